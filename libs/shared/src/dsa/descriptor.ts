import { KernelError } from '../errno';
import * as dsa from './dsa.constants';
import { DESC_PASID_MASK, DESC_PRIV_BIT, DsaFlag, type DsaOp } from './dsa.constants';

// Consts, not `export { … }` of the imports: CommonJS makes such a re-export a getter, called on every use.
export const COMPLETION_RECORD_SIZE = dsa.COMPLETION_RECORD_SIZE;
export const CompletionStatus = dsa.CompletionStatus;
export const DESCRIPTOR_SIZE = dsa.DESCRIPTOR_SIZE;
export const DsaOpcode = dsa.DsaOpcode;
export type { DsaOp };

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
  /** fill: the 8-byte pattern as its two little-endian u32 halves (numbers, no BigInt on the device path). */
  patternLo: number;
  patternHi: number;
}

/** What the device reports for an invalid descriptor: the status goes to `completion` when it is non-null. */
export interface DescriptorError {
  status: number;
  completion: number | null;
  message: string;
}

export type DecodedDescriptor = ({ ok: true; descriptor: Descriptor }) | ({ ok: false } & DescriptorError);

function checkU64Address(value: number | undefined, what: string): number {
  if (value === undefined) throw new KernelError('EINVAL', `${what} is required`);
  if (!Number.isSafeInteger(value) || value < 0) throw new KernelError('EINVAL', `${what} ${value} is not a non-negative integer`);
  return value;
}

/** checkU64Address of a buffer field, its name built only for the error (not a string per descriptor). */
function bufferAddress(value: number | undefined, op: DsaOp, field: 'src' | 'dst'): number {
  return value !== undefined && Number.isSafeInteger(value) && value >= 0 ? value : checkU64Address(value, `${op} ${field}`);
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

const HI = 2 ** 32;

// Byte-level little-endian reads for buffers whose length the caller checked: the JIT keeps these inline, where
// Buffer's read methods each validate their offset (about 15 ns a call, a dozen calls per descriptor).
const u32At = (b: Buffer, at: number): number => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x100_0000;

/**
 * The encoders build a descriptor or record as dwords in this scratch (a DataView store is one inlined write, in
 * little-endian on any host), then copy it to the caller's buffer in one native set: a quarter of the stores of
 * byte writes. Encoding is synchronous and never re-enters itself, so one scratch serves every call.
 */
const SCRATCH = Buffer.alloc(DESCRIPTOR_SIZE);
const SCRATCH_RECORD = SCRATCH.subarray(0, COMPLETION_RECORD_SIZE);
const scratch = new DataView(SCRATCH.buffer, SCRATCH.byteOffset, DESCRIPTOR_SIZE);
const setU32 = (at: number, v: number): void => scratch.setUint32(at, v >>> 0, true);
function setU64(at: number, value: number): void {
  scratch.setUint32(at, value >>> 0, true);
  scratch.setUint32(at + 4, value < HI ? 0 : Math.floor(value / HI), true);
}
/** Zero dwords from byte `from` to byte `to` of the scratch. */
function clearFrom(from: number, to: number): void {
  for (let at = from; at < to; at += 4) scratch.setUint32(at, 0, true);
}

/**
 * Builds a 64-byte descriptor with CRAV|RCR set (the guest driver always polls a completion record). `pasid` and
 * `privileged`, when given, replace the input's (ENQCMD: the CPU fills them in, so the JSON's are ignored).
 */
export function encodeDescriptor(input: DescriptorInput, pasidOverride?: number, privilegedOverride?: boolean): Buffer {
  // From the shared slab (no ArrayBuffer of its own per descriptor); encodeDescriptorInto writes every byte.
  return encodeDescriptorInto(input, Buffer.allocUnsafe(DESCRIPTOR_SIZE), pasidOverride, privilegedOverride);
}

/** The opcode of an own key of DsaOpcode, else -1 (a switch: no hasOwnProperty call per descriptor). */
function opcodeOf(op: unknown): number {
  switch (op) {
    case 'noop':
      return DsaOpcode.noop;
    case 'memmove':
      return DsaOpcode.memmove;
    case 'fill':
      return DsaOpcode.fill;
    case 'compare':
      return DsaOpcode.compare;
    default:
      return -1;
  }
}

/**
 * encodeDescriptor into `b` (64 bytes, every byte written: reserved ones 0), so a caller with a buffer of its own
 * (the ENQCMD portal) allocates nothing. Validation and errors are encodeDescriptor's; on an error `b` is unchanged.
 */
export function encodeDescriptorInto(input: DescriptorInput, b: Buffer, pasidOverride?: number, privilegedOverride?: boolean): Buffer {
  if (b.length !== DESCRIPTOR_SIZE) throw new KernelError('EINVAL', `descriptor buffer is ${b.length} bytes, expected ${DESCRIPTOR_SIZE}`);
  const op = input.op;
  const opcode = opcodeOf(op);
  if (opcode < 0) throw new KernelError('EINVAL', `unknown descriptor op ${String(op)}`);
  const completion = checkU64Address(input.completion, 'completion address');
  const pasid = pasidOverride ?? input.pasid ?? 0;
  const privileged = privilegedOverride ?? input.privileged;
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > DESC_PASID_MASK) throw new KernelError('ERANGE', `descriptor PASID ${pasid} is outside [0, 2^20)`);
  setU32(OFF.pasid, pasid | (privileged ? DESC_PRIV_BIT : 0));
  if (input.blockOnFault !== undefined && typeof input.blockOnFault !== 'boolean') throw new KernelError('EINVAL', `blockOnFault must be a boolean`);
  const flags = DsaFlag.crav | DsaFlag.rcr | (input.blockOnFault ? DsaFlag.blockOnFault : 0);
  setU32(OFF.flags, flags | (opcode << 24)); // flags in bytes 4..6, the opcode in byte 7
  setU64(OFF.completion, completion);
  if (op === 'noop') {
    clearFrom(OFF.src, DESCRIPTOR_SIZE);
    b.set(SCRATCH);
    return b;
  }
  const length = input.length;
  if (length === undefined || !Number.isInteger(length) || length < 0 || length > U32_MAX) {
    throw new KernelError('EINVAL', `${op} length ${length} is not a u32`);
  }
  setU32(OFF.size, length);
  if (op === 'fill') {
    if (typeof input.pattern === 'number' && Number.isSafeInteger(input.pattern) && input.pattern >= 0) setU64(OFF.src, input.pattern);
    else scratch.setBigUint64(OFF.src, patternBits(input.pattern), true);
  } else setU64(OFF.src, bufferAddress(input.src, op, 'src'));
  setU64(OFF.dst, bufferAddress(input.dst, op, 'dst'));
  clearFrom(OFF.reservedFrom, DESCRIPTOR_SIZE);
  b.set(SCRATCH);
  return b;
}

/** The high half of a u64 at or below Number.MAX_SAFE_INTEGER (2^53 − 1) is at most 2^21 − 1. */
const SAFE_HI_MAX = 0x1f_ffff;
const OPS_BY_CODE: Array<DsaOp | undefined> = [];
for (const op of Object.keys(DsaOpcode) as DsaOp[]) OPS_BY_CODE[DsaOpcode[op]] = op;

/** The operation of an opcode byte, or undefined (descriptor-decode.ts decodes with this table). */
export const opOfCode = (opcode: number): DsaOp | undefined => OPS_BY_CODE[opcode];

/** The u64 at offset as a number, or -1 when it is above Number.MAX_SAFE_INTEGER. */
function readSafeU64(buf: Buffer, offset: number): number {
  const hi = u32At(buf, offset + 4);
  return hi > SAFE_HI_MAX ? -1 : hi * HI + u32At(buf, offset);
}

/** An empty Descriptor to decode into (the device keeps one and reuses it for every descriptor it runs). */
export function newDescriptor(): Descriptor {
  return { op: 'noop', opcode: 0, pasid: 0, privileged: false, flags: 0, completion: null, requestCompletion: false, blockOnFault: false, src: 0, dst: 0, length: 0, patternLo: 0, patternHi: 0 };
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
  return encodeCompletionInto(Buffer.alloc(COMPLETION_RECORD_SIZE), rec.status, rec.result ?? 0, rec.faultInfo ?? 0, rec.bytesCompleted ?? 0, rec.faultAddress ?? 0);
}

/** The record into `b` (32 bytes, every byte written), from its fields. */
export function encodeCompletionInto(b: Buffer, status: number, result: number, faultInfo: number, bytesCompleted: number, faultAddress: number): Buffer {
  if (b.length < COMPLETION_RECORD_SIZE) throw new KernelError('EINVAL', `completion record buffer is ${b.length} bytes, expected ${COMPLETION_RECORD_SIZE}`);
  b.set(encodeCompletionScratch(status, result, faultInfo, bytesCompleted, faultAddress));
  return b;
}

/**
 * The record in the encoders' own 32-byte scratch, valid until the next encode: a caller copies it at once (the
 * device, straight into the frame it writes the record to: one copy, not two). Errors are encodeCompletion's.
 */
export function encodeCompletionScratch(status: number, result: number, faultInfo: number, bytesCompleted: number, faultAddress: number): Buffer {
  checkByte(status, 'status');
  checkByte(result, 'result');
  checkByte(faultInfo, 'fault info');
  if (!Number.isInteger(bytesCompleted) || bytesCompleted < 0 || bytesCompleted > U32_MAX) throw new KernelError('EINVAL', `bytes completed ${bytesCompleted} is not a u32`);
  setU64(8, checkU64Address(faultAddress, 'fault address'));
  setU32(0, status | (result << 8) | (faultInfo << 16));
  setU32(4, bytesCompleted);
  clearFrom(16, COMPLETION_RECORD_SIZE);
  return SCRATCH_RECORD;
}

function checkByte(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new KernelError('EINVAL', `completion ${what} ${v} is not a byte`);
}

/** Decodes a record read back from memory; status 0 means "not written yet" (the driver keeps polling). */
export function decodeCompletion(buf: Buffer): CompletionRecord & { statusName: string } {
  if (buf.length < COMPLETION_RECORD_SIZE) throw new KernelError('EINVAL', `completion record is ${buf.length} bytes, expected ${COMPLETION_RECORD_SIZE}`);
  const status = buf.readUInt8(0);
  const name = (Object.keys(CompletionStatus) as Array<keyof typeof CompletionStatus>).find((k) => CompletionStatus[k] === status);
  const faultAddress = readSafeU64(buf, 8);
  return {
    status,
    statusName: name ?? `unknown-0x${status.toString(16)}`,
    result: buf.readUInt8(1),
    faultInfo: buf.readUInt8(2),
    bytesCompleted: buf.readUInt32LE(4),
    faultAddress: faultAddress >= 0 ? faultAddress : Number.MAX_SAFE_INTEGER,
  };
}
