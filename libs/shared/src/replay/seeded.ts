// Deterministic mode (DESIGN §9, SEED=<n>): every value an app would draw at random — bearer tokens, admin
// tokens, trace and span ids — comes from a named stream of the seed instead. A stream is SHA-256 in counter
// mode over (seed, stream name, counter): the same seed and name give the same values in the same order on
// any machine, and two streams never share values. Without SEED nothing uses this.
import { createHash } from 'node:crypto';

export class SeededStream {
  private counter = 0;

  constructor(
    readonly seed: number,
    readonly name: string,
  ) {}

  /** The next `n` bytes of the stream. */
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; ) {
      const block = createHash('sha256').update(`${this.seed}\0${this.name}\0${this.counter++}`).digest();
      off += block.copy(out, off);
    }
    return out;
  }

  hex(n: number): string {
    return this.bytes(n).toString('hex');
  }

  base64url(n: number): string {
    return this.bytes(n).toString('base64url');
  }
}

/** A token source: seeded when `seed` is set, else null (the caller keeps its random default). */
export function seededTokens(seed: number | null, name: string, bytes = 16, encoding: 'hex' | 'base64url' = 'hex'): (() => string) | undefined {
  if (seed === null) return undefined;
  const s = new SeededStream(seed, name);
  return () => (encoding === 'hex' ? s.hex(bytes) : s.base64url(bytes));
}
