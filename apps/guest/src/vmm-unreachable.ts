// A call the guest's VMM never answered: the transport to it failed (502 EIO) or timed out (504 ETIMEDOUT), as
// when the VMM was killed while the call was in flight. Under a real guest the machine is gone with its VMM; the
// console (a program in the guest) must not see a 5xx, nor the VMM's URL that the transport error names
// (DESIGN §11: no 5xx; issue 11 defect 2: guest terms only). It sees the machine stopping, as a device gone.
import { KernelError, noAnswer } from '@app/shared/errno';

export function inGuestTerms(err: unknown): unknown {
  if (noAnswer(err)) {
    return new KernelError('ENODEV', 'the machine is stopping: its VMM did not answer');
  }
  return err;
}
