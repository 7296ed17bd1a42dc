import { KernelError } from '@app/shared/errno';

/**
 * Runs a host call made on a guest's behalf and hides the host from the answer: a refusal keeps its
 * errno (and status) but not the host's message, which can name host pids, fds, PASIDs or URLs.
 */
export async function onBehalfOfGuest<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof KernelError) throw new KernelError(err.errno, `${what} refused by the host (${err.errno})`, err.status);
    throw new KernelError('EIO', `${what} failed on the host`);
  }
}
