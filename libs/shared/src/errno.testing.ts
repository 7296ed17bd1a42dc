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
