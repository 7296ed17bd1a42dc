import { KernelError } from '@app/shared/errno';
import { onBehalfOfGuest } from './guest-errors';

describe('errors of host calls made on a guest’s behalf', () => {
  it('keep the errno and status but drop the host’s message', async () => {
    const host = new KernelError('EBADF', 'fd 5 is not open in process 123 (http://127.0.0.1:7100)');
    const err = await onBehalfOfGuest('WRMSR', () => Promise.reject(host)).catch((e: unknown) => e as KernelError);
    expect(err).toBeInstanceOf(KernelError);
    expect(err).toMatchObject({ errno: 'EBADF', status: 400, message: 'WRMSR refused by the host (EBADF)' });
    expect(err.message).not.toMatch(/123|7100|fd 5/);
  });

  it('turn anything else into EIO without its text, and pass results through', async () => {
    await expect(onBehalfOfGuest('read', () => Promise.reject(new Error('ECONNREFUSED 127.0.0.1:7100')))).rejects.toMatchObject({
      errno: 'EIO',
      message: 'read failed on the host',
    });
    await expect(onBehalfOfGuest('read', () => Promise.resolve(7))).resolves.toBe(7);
  });
});
