import { KernelError } from '@app/shared/errno';
import { IA32_PASID_PASID_MASK, IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { MSR_IA32_PASID } from './cpu.constants';

/** WRMSR IA32_PASID validation: another MSR or a reserved bit set → EINVAL (the #GP of a real WRMSR). */
export function checkIa32PasidWrite(msr: string, value: number): number {
  checkMsr(msr);
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new KernelError('EINVAL', `IA32_PASID value ${value} has reserved bits 63:32 set or is not an integer`);
  }
  if ((value & ~(IA32_PASID_PASID_MASK | IA32_PASID_VALID)) !== 0) {
    throw new KernelError('EINVAL', `IA32_PASID value 0x${value.toString(16)} sets reserved bits 30:20`);
  }
  return value;
}

/** The only MSR modelled is IA32_PASID; any other → EINVAL (#GP on a real RDMSR/WRMSR of it). */
export function checkMsr(msr: string): void {
  if (msr !== MSR_IA32_PASID) throw new KernelError('EINVAL', `unsupported MSR ${String(msr)} (only ${MSR_IA32_PASID})`);
}
