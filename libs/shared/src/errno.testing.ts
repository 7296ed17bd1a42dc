// Test support (not used by production code).
import { KernelError } from './errno';

/** The errno `fn` throws; undefined when it does not throw. Anything that is not a KernelError is rethrown. */
export function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof KernelError) return err.errno;
    throw err;
  }
  return undefined;
}

/** The refusal `fn` throws: its errno and message (fn must throw a KernelError). */
export function refusalOf(fn: () => unknown): { errno: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof KernelError) return { errno: err.errno, message: err.message };
    throw err;
  }
  throw new Error('the call was not refused');
}
