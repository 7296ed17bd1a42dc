import { KernelError } from './errno';

export type PayloadEncoding = 'base64' | 'hex';

/** Decodes a memory payload (base64 by default, or hex); a malformed one is EINVAL before anything is touched. */
export function decodePayload(data: string, encoding: PayloadEncoding = 'base64'): Buffer {
  const ok =
    encoding === 'hex'
      ? /^(?:[0-9a-fA-F]{2})*$/.test(data)
      : data.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(data);
  if (!ok) throw new KernelError('EINVAL', `data is not valid ${encoding}`);
  return Buffer.from(data, encoding);
}

export function encodePayload(data: Buffer, encoding: PayloadEncoding = 'base64'): { data: string } {
  return { data: data.toString(encoding) };
}
