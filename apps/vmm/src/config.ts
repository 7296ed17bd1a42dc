import { adminTokenStream, commonConfig, type CommonConfig, debugStall, envInt, envToken, envUrl } from '@app/shared/config';

export interface VmmConfig extends CommonConfig {
  hostKernelUrl: string;
  /** The VMM's management token (create, list, delete VMs); guests only ever get their own VM token. */
  adminToken: string;
  adminTokenGenerated: boolean;
  pasidQuota: number;
  /** Crash-test knob: the host calls the VMM hangs before (`[<trace>/]<method>[#n]`, see libs/shared/src/debug/stall-knob.ts). */
  debugStallBefore: string | null;
  /** DEBUG_CALL_TRACE=1: every host call is printed on stdout (`CALL {...}`), so a harness learns the steps. */
  debugCallTrace: boolean;
}

export function loadConfig(env: NodeJS.ProcessEnv): VmmConfig {
  const hostKernelUrl = envUrl(env, 'HOST_KERNEL_URL', 'http://127.0.0.1:7100');
  const common = commonConfig(env, 'vmm', 7200, [hostKernelUrl]);
  const admin = envToken(env, 'ADMIN_TOKEN', adminTokenStream(common.seed, 'vmm'));
  return {
    ...common,
    hostKernelUrl,
    adminToken: admin.token,
    adminTokenGenerated: admin.generated,
    pasidQuota: envInt(env, 'PASID_QUOTA', 64, 0, 1 << 20),
    debugStallBefore: debugStall(env),
    debugCallTrace: env.DEBUG_CALL_TRACE === '1',
  };
}
