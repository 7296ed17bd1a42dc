// The device's decode of a descriptor (DSA §8.3 descriptor checks), over its sixteen u32 words: a work-queue slot
// is a Uint32Array view of its 64 bytes on a little-endian host (HOST_LITTLE_ENDIAN), a dword read per field
// instead of four byte reads. Anything else (a Buffer, a big-endian host) is read into the same words
// little-endian first, so there is one decoder.
import { KernelError } from '../errno';
import { COMPLETION_RECORD_ALIGN, CompletionStatus, DESC_PASID_MASK, DESC_PRIV_BIT, DESCRIPTOR_SIZE, DSA_SUPPORTED_FLAGS, DsaFlag } from './dsa.constants';
import { modPow2 } from '../x86/page-math';
import { type DecodedDescriptor, type Descriptor, type DescriptorError, newDescriptor, opOfCode } from './descriptor';

/** Words of a descriptor; dword i holds bytes 4i..4i+3. */
export const DESCRIPTOR_WORDS = DESCRIPTOR_SIZE / 4;

/** A Uint32Array reads little-endian data as is on this host. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const HI = 2 ** 32;
const U32_MAX = 0xffff_ffff;
/** The high half of a u64 at or below Number.MAX_SAFE_INTEGER is at most 2^21 − 1. */
const SAFE_HI_MAX = 0x1f_ffff;

// Word indexes of the fields (descriptor.ts OFF / 4): @0 PASID|priv, @4 flags (low 3 bytes) + opcode (top byte),
// @8 completion, @16 src (fill: pattern), @24 dst, @32 transfer size, @36.. reserved.
const W_FLAGS = 1;
const W_COMPLETION = 2;
const W_SRC = 4;
const W_DST = 6;
const W_SIZE = 8;
const W_RESERVED_FROM = 9;

/** The u64 of words lo, lo+1 as a number, or -1 above Number.MAX_SAFE_INTEGER. */
function safeU64(w: Uint32Array, lo: number): number {
  const hi = w[lo + 1];
  return hi > SAFE_HI_MAX ? -1 : hi * HI + w[lo];
}

function reservedClear(w: Uint32Array, from: number): boolean {
  let bits = 0;
  for (let i = from; i < DESCRIPTOR_WORDS; i++) bits |= w[i];
  return bits === 0;
}

/**
 * Decodes and validates as the device does (DSA §8.3 descriptor checks, in this order): completion address,
 * opcode, flags, reserved fields, transfer size, addresses. An invalid descriptor is a result, not an
 * exception, because the device reports it in the completion record. `maxTransferSize` is the WQ's limit.
 * `w[i]` holds bytes 4i..4i+3 as a little-endian u32. Fills `out` and returns null, or returns what the device
 * reports (`out` is then undefined). Numbers only.
 */
export function decodeDescriptorWordsInto(w: Uint32Array, maxTransferSize: number, out: Descriptor): DescriptorError | null {
  if (w.length !== DESCRIPTOR_WORDS) throw new KernelError('EINVAL', `descriptor is ${w.length * 4} bytes, expected ${DESCRIPTOR_SIZE}`);
  const dword0 = w[0];
  const flags = w[W_FLAGS] & 0xff_ffff;
  const opcode = w[W_FLAGS] >>> 24;
  const crav = (flags & DsaFlag.crav) !== 0;
  const rawCompletion = safeU64(w, W_COMPLETION);
  const completion = crav && rawCompletion >= 0 ? rawCompletion : null;
  if (crav && completion === null) {
    const address = (BigInt(w[W_COMPLETION + 1]) << 32n) | BigInt(w[W_COMPLETION]);
    return { status: CompletionStatus.translationFail, completion, message: `completion address ${address} is not addressable` };
  }
  if (completion !== null && modPow2(completion, COMPLETION_RECORD_ALIGN) !== 0) {
    return { status: CompletionStatus.completionAlign, completion: null, message: `completion address ${completion} is not 32-byte aligned` };
  }
  const op = opOfCode(opcode);
  if (op === undefined) return { status: CompletionStatus.badOpcode, completion, message: `unsupported opcode 0x${opcode.toString(16)}` };
  if ((flags & ~DSA_SUPPORTED_FLAGS) !== 0) return { status: CompletionStatus.invalidFlags, completion, message: `unsupported flags 0x${flags.toString(16)}` };
  if ((dword0 & ~(DESC_PASID_MASK | DESC_PRIV_BIT)) !== 0 || !reservedClear(w, op === 'noop' ? W_SRC : W_RESERVED_FROM)) {
    return { status: CompletionStatus.nonZeroReserved, completion, message: 'non-zero reserved field' };
  }
  const length = op === 'noop' ? 0 : w[W_SIZE];
  if (op !== 'noop' && (length === 0 || length > maxTransferSize)) {
    return { status: CompletionStatus.transferSizeRange, completion, message: `transfer size ${length} is outside [1, ${maxTransferSize}]` };
  }
  const src = safeU64(w, W_SRC);
  const dst = safeU64(w, W_DST);
  const srcIsAddress = op === 'memmove' || op === 'compare';
  // addr + length > MAX_SAFE, in exact arithmetic (MAX_SAFE − length is exact; addr + length may not be).
  if ((srcIsAddress && (src < 0 || src > Number.MAX_SAFE_INTEGER - length)) || (op !== 'noop' && (dst < 0 || dst > Number.MAX_SAFE_INTEGER - length))) {
    return { status: CompletionStatus.translationFail, completion, message: 'buffer address is not addressable' };
  }
  out.op = op;
  out.opcode = opcode;
  out.pasid = dword0 & DESC_PASID_MASK;
  out.privileged = (dword0 & DESC_PRIV_BIT) !== 0;
  out.flags = flags;
  out.completion = completion;
  out.requestCompletion = (flags & DsaFlag.rcr) !== 0;
  out.blockOnFault = (flags & DsaFlag.blockOnFault) !== 0;
  out.src = srcIsAddress ? src : 0;
  out.dst = op === 'noop' ? 0 : dst;
  out.length = length;
  out.patternLo = op === 'fill' ? w[W_SRC] : 0;
  out.patternHi = op === 'fill' ? w[W_SRC + 1] : 0;
  return null;
}

/** A 64-byte buffer's words (it must start on a 4-byte boundary of its ArrayBuffer, as Buffer.alloc's do). */
export function descriptorWords(b: Buffer): Uint32Array {
  if (b.length !== DESCRIPTOR_SIZE || b.byteOffset % 4 !== 0) throw new RangeError(`a descriptor view needs 64 bytes at a 4-byte aligned offset`);
  return new Uint32Array(b.buffer, b.byteOffset, DESCRIPTOR_WORDS);
}

/** Where decodeDescriptorInto reads a Buffer's words (one per process: decode is synchronous). */
const BYTE_WORDS = new Uint32Array(DESCRIPTOR_WORDS);

/** decodeDescriptorWordsInto of 64 bytes, read as little-endian dwords on any host. */
export function decodeDescriptorInto(buf: Buffer, maxTransferSize: number, out: Descriptor): DescriptorError | null {
  if (buf.length !== DESCRIPTOR_SIZE) throw new KernelError('EINVAL', `descriptor is ${buf.length} bytes, expected ${DESCRIPTOR_SIZE}`);
  for (let i = 0; i < DESCRIPTOR_WORDS; i++) BYTE_WORDS[i] = buf.readUInt32LE(4 * i);
  return decodeDescriptorWordsInto(BYTE_WORDS, maxTransferSize, out);
}

/** decodeDescriptorInto as a fresh result (tests, cold paths). */
export function decodeDescriptor(buf: Buffer, maxTransferSize: number = U32_MAX): DecodedDescriptor {
  const descriptor = newDescriptor();
  const error = decodeDescriptorInto(buf, maxTransferSize, descriptor);
  return error ? { ok: false, ...error } : { ok: true, descriptor };
}
