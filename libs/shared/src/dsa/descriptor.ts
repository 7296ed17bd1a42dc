import { KernelError } from '../errno';
import {
  COMPLETION_RECORD_ALIGN,
  COMPLETION_RECORD_SIZE,
  CompletionStatus,
  DESC_PASID_MASK,
  DESC_PRIV_BIT,
  DESCRIPTOR_SIZE,
  DSA_SUPPORTED_FLAGS,
  DsaFlag,
  DsaOpcode,
  type DsaOp,
} from './dsa.constants';

export { COMPLETION_RECORD_SIZE, CompletionStatus, DESCRIPTOR_SIZE, DsaOpcode, type DsaOp };

/*
 * Descriptor layout (struct dsa_hw_desc): @0 u32 PASID[19:0] | priv[31]; @4 flags (3 bytes); @7 opcode;
 * @8 completion address; @16 src (fill: pattern); @24 dst (compare: src2); @32 transfer size u32;
 * @36..63 reserved for these operations (must be 0).
 */
const OFF = { pasid: 0, flags: 4, opcode: 7, completion: 8, src: 16, dst: 24, size: 32, reservedFrom: 36 } as const;
const U32_MAX = 0xffff_ffff;

export interface DescriptorInput {
  op: DsaOp;
  src?: number;
  dst?: number;
  length?: number;
  /** 8-byte fill pattern, little-endian (byte i of the destination = byte i % 8 of the pattern). */
  pattern?: number | bigint;
  completion: number;
  /** PASID field; ENQCMD overwrites it with the submitter's PASID, so drivers usually leave it 0. */
  pasid?: number;
  privileged?: boolean;
  /** Block on fault (DSA flag bit 1): a translation fault becomes page requests and a wait, not a completion. */
  blockOnFault?: boolean;
}

export interface Descriptor {
  op: DsaOp;
  opcode: number;
  pasid: number;
  privileged: boolean;
  flags: number;
  /** null when CRAV is clear: the device has nowhere to report. */
  completion: number | null;
  /** RCR: write a record on success too. */
  requestCompletion: boolean;
  /** Block on fault: wait for page requests to be answered instead of completing with a page fault. */
  blockOnFault: boolean;
  src: number;
  dst: number;
  length: number;
  pattern: bigint;
}

export type DecodedDescriptor =
  | { ok: true; descriptor: Descriptor }
  /** What the device reports: the status goes to `completion` when it is non-null. */
  | { ok: false; status: number; completion: number | null; message: string };

function checkU64Address(value: number | undefined, what: string): number {
  if (value === undefined) throw new KernelError('EINVAL', `${what} is required`);
  if (!Number.isSafeInteger(value) || value < 0) throw new KernelError('EINVAL', `${what} ${value} is not a non-negative integer`);
  return value;
}

function patternBits(pattern: number | bigint | undefined): bigint {
  if (pattern === undefined) throw new KernelError('EINVAL', 'fill pattern is required');
  if (typeof pattern === 'number' && !(Number.isSafeInteger(pattern) && pattern >= 0)) {
    throw new KernelError('EINVAL', `fill pattern ${pattern} is not a non-negative integer`);
  }
  const bits = BigInt(pattern);
  if (bits < 0n || bits >= 1n << 64n) throw new KernelError('EINVAL', `fill pattern ${pattern} does not fit in 64 bits`);
  return bits;
}

/** Builds a 64-byte descriptor with CRAV|RCR set (the guest driver always polls a completion record). */
export function encodeDescriptor(input: DescriptorInput): Buffer {
  if (!Object.prototype.hasOwnProperty.call(DsaOpcode, input.op)) throw new KernelError('EINVAL', `unknown descriptor op ${String(input.op)}`);
  const completion = checkU64Address(input.completion, 'completion address');
  const pasid = input.pasid ?? 0;
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > DESC_PASID_MASK) throw new KernelError('ERANGE', `descriptor PASID ${pasid} is outside [0, 2^20)`);
  const b = Buffer.alloc(DESCRIPTOR_SIZE);
  b.writeUInt32LE((pasid | (input.privileged ? DESC_PRIV_BIT : 0)) >>> 0, OFF.pasid);
  if (input.blockOnFault !== undefined && typeof input.blockOnFault !== 'boolean') throw new KernelError('EINVAL', `blockOnFault must be a boolean`);
  b.writeUIntLE(DsaFlag.crav | DsaFlag.rcr | (input.blockOnFault ? DsaFlag.blockOnFault : 0), OFF.flags, 3);
  b.writeUInt8(DsaOpcode[input.op], OFF.opcode);
  b.writeBigUInt64LE(BigInt(completion), OFF.completion);
  if (input.op === 'noop') return b;
  const length = input.length;
  if (length === undefined || !Number.isInteger(length) || length < 0 || length > U32_MAX) {
    throw new KernelError('EINVAL', `${input.op} length ${length} is not a u32`);
  }
  b.writeUInt32LE(length, OFF.size);
  if (input.op === 'fill') b.writeBigUInt64LE(patternBits(input.pattern), OFF.src);
  else b.writeBigUInt64LE(BigInt(checkU64Address(input.src, `${input.op} src`)), OFF.src);
  b.writeBigUInt64LE(BigInt(checkU64Address(input.dst, `${input.op} dst`)), OFF.dst);
  return b;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Decodes and validates as the device does (DSA §8.3 descriptor checks, in this order): completion address,
 * opcode, flags, reserved fields, transfer size, addresses. An invalid descriptor is a result, not an
 * exception, because the device reports it in the completion record. `maxTransferSize` is the WQ's limit.
 */
export function decodeDescriptor(buf: Buffer, maxTransferSize: number = U32_MAX): DecodedDescriptor {
  if (buf.length !== DESCRIPTOR_SIZE) throw new KernelError('EINVAL', `descriptor is ${buf.length} bytes, expected ${DESCRIPTOR_SIZE}`);
  const dword0 = buf.readUInt32LE(OFF.pasid);
  const flags = buf.readUIntLE(OFF.flags, 3);
  const opcode = buf.readUInt8(OFF.opcode);
  const rawCompletion = buf.readBigUInt64LE(OFF.completion);
  const crav = (flags & DsaFlag.crav) !== 0;
  const completion = crav && rawCompletion <= MAX_SAFE ? Number(rawCompletion) : null;
  const invalid = (status: number, message: string): DecodedDescriptor => ({ ok: false, status, completion, message });
  if (crav && completion === null) return invalid(CompletionStatus.translationFail, `completion address ${rawCompletion} is not addressable`);
  if (completion !== null && completion % COMPLETION_RECORD_ALIGN !== 0) {
    return { ok: false, status: CompletionStatus.completionAlign, completion: null, message: `completion address ${completion} is not 32-byte aligned` };
  }
  const op = (Object.keys(DsaOpcode) as DsaOp[]).find((k) => DsaOpcode[k] === opcode);
  if (op === undefined) return invalid(CompletionStatus.badOpcode, `unsupported opcode 0x${opcode.toString(16)}`);
  if ((flags & ~DSA_SUPPORTED_FLAGS) !== 0) return invalid(CompletionStatus.invalidFlags, `unsupported flags 0x${flags.toString(16)}`);
  const reservedBytes = op === 'noop' ? buf.subarray(OFF.src) : buf.subarray(OFF.reservedFrom);
  if ((dword0 & ~(DESC_PASID_MASK | DESC_PRIV_BIT)) !== 0 || reservedBytes.some((x) => x !== 0)) {
    return invalid(CompletionStatus.nonZeroReserved, 'non-zero reserved field');
  }
  const length = op === 'noop' ? 0 : buf.readUInt32LE(OFF.size);
  if (op !== 'noop' && (length === 0 || length > maxTransferSize)) {
    return invalid(CompletionStatus.transferSizeRange, `transfer size ${length} is outside [1, ${maxTransferSize}]`);
  }
  const rawSrc = buf.readBigUInt64LE(OFF.src);
  const rawDst = buf.readBigUInt64LE(OFF.dst);
  const srcIsAddress = op === 'memmove' || op === 'compare';
  if ((srcIsAddress && rawSrc + BigInt(length) > MAX_SAFE) || (op !== 'noop' && rawDst + BigInt(length) > MAX_SAFE)) {
    return invalid(CompletionStatus.translationFail, 'buffer address is not addressable');
  }
  return {
    ok: true,
    descriptor: {
      op,
      opcode,
      pasid: dword0 & DESC_PASID_MASK,
      privileged: (dword0 & DESC_PRIV_BIT) !== 0,
      flags,
      completion,
      requestCompletion: (flags & DsaFlag.rcr) !== 0,
      blockOnFault: (flags & DsaFlag.blockOnFault) !== 0,
      src: srcIsAddress ? Number(rawSrc) : 0,
      dst: op === 'noop' ? 0 : Number(rawDst),
      length,
      pattern: op === 'fill' ? rawSrc : 0n,
    },
  };
}

/** Completion record (struct dsa_completion_record): @0 status, @1 result, @2 fault_info, @4 bytes_completed u32, @8 fault_addr u64. */
export interface CompletionRecord {
  status: number;
  result: number;
  faultInfo: number;
  bytesCompleted: number;
  faultAddress: number;
}

export function encodeCompletion(rec: Partial<CompletionRecord> & { status: number }): Buffer {
  const b = Buffer.alloc(COMPLETION_RECORD_SIZE);
  const byteField = (v: number, what: string): number => {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new KernelError('EINVAL', `completion ${what} ${v} is not a byte`);
    return v;
  };
  b.writeUInt8(byteField(rec.status, 'status'), 0);
  b.writeUInt8(byteField(rec.result ?? 0, 'result'), 1);
  b.writeUInt8(byteField(rec.faultInfo ?? 0, 'fault info'), 2);
  const bytes = rec.bytesCompleted ?? 0;
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > U32_MAX) throw new KernelError('EINVAL', `bytes completed ${bytes} is not a u32`);
  b.writeUInt32LE(bytes, 4);
  b.writeBigUInt64LE(BigInt(checkU64Address(rec.faultAddress ?? 0, 'fault address')), 8);
  return b;
}

/** Decodes a record read back from memory; status 0 means "not written yet" (the driver keeps polling). */
export function decodeCompletion(buf: Buffer): CompletionRecord & { statusName: string } {
  if (buf.length < COMPLETION_RECORD_SIZE) throw new KernelError('EINVAL', `completion record is ${buf.length} bytes, expected ${COMPLETION_RECORD_SIZE}`);
  const status = buf.readUInt8(0);
  const name = (Object.keys(CompletionStatus) as Array<keyof typeof CompletionStatus>).find((k) => CompletionStatus[k] === status);
  const faultAddress = buf.readBigUInt64LE(8);
  return {
    status,
    statusName: name ?? `unknown-0x${status.toString(16)}`,
    result: buf.readUInt8(1),
    faultInfo: buf.readUInt8(2),
    bytesCompleted: buf.readUInt32LE(4),
    faultAddress: faultAddress <= MAX_SAFE ? Number(faultAddress) : Number.MAX_SAFE_INTEGER,
  };
}
