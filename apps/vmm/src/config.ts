import { adminTokenStream, commonConfig, type CommonConfig, envInt, envToken, envUrl } from '@app/shared/config';

export interface VmmConfig extends CommonConfig {
  hostKernelUrl: string;
  /** The VMM's management token (create, list, delete VMs); guests only ever get their own VM token. */
  adminToken: string;
  adminTokenGenerated: boolean;
  pasidQuota: number;
  /** Crash-test knob: the host call the VMM hangs before (see vm/debug-stall.ts). */
  debugStallBefore: string | null;
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
    debugStallBefore: env.DEBUG_STALL_BEFORE || null,
  };
}
