// Page arithmetic for the data plane's addresses. They are doubles (above 2^31 they cannot be small integers), and
// V8 compiles `%` of a double to a call of C's fmod, about 20 ns, a dozen times per descriptor; floor-divide-multiply
// is three float instructions, and exact: a power of two divides a double exactly. For non-negative integers below
// 2^53 it is `%` (for a negative x it would be the offset from the page below, where `%` goes negative).
import { PAGE_SIZE } from './x86.constants';

/** x mod m, for m a power of two. */
export const modPow2 = (x: number, m: number): number => x - Math.floor(x / m) * m;

/** x mod PAGE_SIZE: the offset of address x in its page. */
export const pageOffsetOf = (x: number): number => x - Math.floor(x / PAGE_SIZE) * PAGE_SIZE;

/** The first byte of x's page. */
export const pageBaseOf = (x: number): number => Math.floor(x / PAGE_SIZE) * PAGE_SIZE;
