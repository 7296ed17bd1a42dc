// DTOs more than one app takes (class-validator only; the Swagger CLI plugin derives their schema).
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { Optional } from './optional';

const MAX_ADDR = Number.MAX_SAFE_INTEGER;

/** Query strings carry numbers as text: a run of digits becomes a number, anything else stays for the validator to refuse. */
export const toInt = ({ value }: { value: unknown }): unknown => (typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value);

export class WrmsrDto {
  /** Only IA32_PASID (MSR 0xd93) is modelled. */
  @IsIn(['IA32_PASID'])
  msr!: 'IA32_PASID';

  /** Bits 19:0 the PASID, bit 31 valid; other bits are reserved (#GP on real hardware → EINVAL here). */
  @IsInt()
  @Min(0)
  @Max(0xffffffff)
  value!: number;
}

/** The work of a DSA-like descriptor; addresses are in the submitting PASID's address space. */
export class WorkDescriptorDto {
  @IsIn(['noop', 'memmove', 'fill', 'compare'])
  op!: 'noop' | 'memmove' | 'fill' | 'compare';

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  src?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  dst?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(0xffffffff)
  length?: number;

  /** fill: the 8-byte pattern, as a number below 2^53. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  pattern?: number;
}

/** A whole descriptor as the CPU submits it: the work plus where the device writes its completion record. */
export class DescriptorDto extends WorkDescriptorDto {
  /** Address of the 32-byte completion record (32-byte aligned). */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  completion!: number;

  /**
   * DSA block-on-fault: on a translation fault the device sends page requests and waits for their answer (the
   * page table must take page requests: host SVA, or a nested table with a fault queue), instead of completing
   * with status 2 at once.
   */
  @IsOptional()
  @IsBoolean()
  blockOnFault?: boolean;
}

export class GuestWriteDto {
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  /** The bytes, base64 (default) or hex. */
  @IsString()
  @MaxLength(6 << 20)
  data!: string;

  @Optional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}

export class GuestReadQuery {
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(4 << 20)
  length!: number;

  @IsOptional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}
