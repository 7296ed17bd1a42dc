import { parseStallPoints, type StallKnob, StallKnob as Knob } from '@app/shared/debug/stall-knob';
import type { HostKernelPort } from '../host-kernel.port';

/**
 * The VMM's crash-test knob over its door to the host (libs/shared/src/debug/stall-knob.ts): with
 * DEBUG_STALL_BEFORE=<host call>[#n], that call hangs, so a test can kill the VMM at exactly that point of a
 * sequence (e.g. after ALLOW, before MAP_PASID). Every VM's port (`as(token)`) is counted by the same knob.
 */
export function withKnob(client: HostKernelPort, knob: StallKnob | null): HostKernelPort {
  return knob ? knob.wrap(client, ['as']) : client;
}

/** The knob from a DEBUG_STALL_BEFORE value alone (the in-process stack): the calls it names hang for good. */
export function withStall(client: HostKernelPort, spec: string | null): HostKernelPort {
  return withKnob(client, new Knob('host', parseStallPoints(spec)));
}
