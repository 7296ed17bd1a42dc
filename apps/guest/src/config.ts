import { commonConfig, ConfigError, type CommonConfig, debugStall, envInt, envUrl } from '@app/shared/config';
import { parseTraceparent } from '@app/shared/trace';

export interface GuestConfig extends CommonConfig {
  vmmUrl: string;
  vmId: number;
  vmToken: string;
  /** Boot under this W3C traceparent (so a VM's creation and its guest's boot are one trace). */
  bootTraceparent: string | null;
  /** Test knob DEBUG_PAGE_REQUESTS=ignore: page requests are journaled but left for a test to answer by hand. */
  pageRequests: 'handle' | 'ignore';
  /** Crash-test knob: the VMM calls the guest hangs before (`[<trace>/]<method>[#n]`, libs/shared/src/debug/stall-knob.ts). */
  debugStallBefore: string | null;
  /** DEBUG_CALL_TRACE=1: every VMM call is printed on stdout (`CALL {...}`). */
  debugCallTrace: boolean;
}

export function loadConfig(env: NodeJS.ProcessEnv): GuestConfig {
  const vmmUrl = envUrl(env, 'VMM_URL', 'http://127.0.0.1:7200');
  const common = commonConfig(env, 'guest', 7300, [vmmUrl]);
  if (!env.VM_ID) throw new ConfigError('VM_ID is required (the id the VMM gave this guest\'s VM)');
  const vmId = envInt(env, 'VM_ID', 0, 1, Number.MAX_SAFE_INTEGER);
  const vmToken = env.VM_TOKEN ?? '';
  if (!/^[A-Za-z0-9._~-]{8,128}$/.test(vmToken)) throw new ConfigError('VM_TOKEN is required (the per-VM token the VMM issued)');
  const tp = env.TRACEPARENT || null;
  if (tp && !parseTraceparent(tp)) throw new ConfigError(`TRACEPARENT "${tp}" is not a W3C traceparent`);
  const debug = env.DEBUG_PAGE_REQUESTS || 'handle';
  if (debug !== 'handle' && debug !== 'ignore') throw new ConfigError(`DEBUG_PAGE_REQUESTS must be "handle" or "ignore", not "${debug}"`);
  return { ...common, vmmUrl, vmId, vmToken, bootTraceparent: tp, pageRequests: debug, debugStallBefore: debugStall(env), debugCallTrace: env.DEBUG_CALL_TRACE === '1' };
}
