import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostKernelClient } from '../../libs/shared/src/http/host-kernel.client';
import { RestClient } from '../../libs/shared/src/http/rest-client';
import { VmmClient } from '../../libs/shared/src/http/vmm.client';
import { formatTraceparent, newSpanId, newTraceId } from '../../libs/shared/src/trace';
import { type AppProcess, killAll, spawnApp } from './apps';
import { sweepShmOrphans } from '../../libs/shared/src/memory/shm-files';

export const HOST_ADMIN = 'host-admin-token-e2e';
export const VMM_ADMIN = 'vmm-admin-token-e2e';
export const AUDIT = 'audit-token-e2e';

export interface RawResponse {
  status: number;
  body: unknown;
  text: string;
}

/** One HTTP call, raw: status and parsed body, for asserting on errors as well as successes. */
export async function http(
  method: string,
  url: string,
  opts: { token?: string; body?: unknown; rawBody?: string; traceparent?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.traceparent) headers.traceparent = opts.traceparent;
  let body: string | undefined;
  if (opts.rawBody !== undefined) {
    body = opts.rawBody;
    headers['content-type'] ??= 'application/json';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* plain text */
  }
  return { status: res.status, body: parsed, text };
}

export function newTraceparent(): { traceId: string; traceparent: string } {
  const traceId = newTraceId();
  return { traceId, traceparent: formatTraceparent(traceId, newSpanId()) };
}

/**
 * The three apps as separate processes on free ports, each with a fresh temp data directory.
 * `stop()` kills every process group, whatever happened in the test.
 */
export class Stack {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'ioasid-lab-e2e-'));
  host!: AppProcess;
  vmm?: AppProcess;
  guests: AppProcess[] = [];
  /** Environment every app of this stack starts with (e.g. DB_URL to run them all on PostgreSQL). */
  env: Record<string, string> = {};

  async startHost(env: Record<string, string> = {}): Promise<AppProcess> {
    this.host = await spawnApp('host-kernel', { DATA_DIR: join(this.dataDir, 'host'), ADMIN_TOKEN: HOST_ADMIN, AUDIT_TOKEN: AUDIT, MEMORY_MIB: '1024', ...this.env, ...env });
    return this.host;
  }

  async startVmm(env: Record<string, string> = {}): Promise<AppProcess> {
    this.vmm = await spawnApp('vmm', {
      DATA_DIR: join(this.dataDir, 'vmm'),
      ADMIN_TOKEN: VMM_ADMIN,
      AUDIT_TOKEN: AUDIT,
      HOST_KERNEL_URL: this.host.url,
      ...this.env,
      ...env,
    });
    return this.vmm;
  }

  async startGuest(vm: { id: number; token: string }, env: Record<string, string> = {}): Promise<AppProcess> {
    const guest = await spawnApp('guest', {
      DATA_DIR: join(this.dataDir, `guest-${vm.id}`),
      VMM_URL: this.vmmApp.url,
      VM_ID: String(vm.id),
      VM_TOKEN: vm.token,
      AUDIT_TOKEN: AUDIT,
      ...this.env,
      ...env,
    });
    this.guests.push(guest);
    return guest;
  }

  get vmmApp(): AppProcess {
    if (!this.vmm) throw new Error('the VMM is not started');
    return this.vmm;
  }

  /** A host-kernel client without a token (use `.as(token)`), or with the admin token. */
  hostClient(token?: string): HostKernelClient {
    return new HostKernelClient(new RestClient({ baseUrl: this.host.url, app: 'operator', token }));
  }

  hostAdmin(): HostKernelClient {
    return this.hostClient(HOST_ADMIN);
  }

  /** A new host process and a client acting as it. */
  async hostProcess(comm = 'test'): Promise<{ pid: number; token: string; k: HostKernelClient }> {
    const p = await this.hostClient().createProcess(comm);
    return { ...p, k: this.hostClient(p.token) };
  }

  vmmRest(token = VMM_ADMIN): RestClient {
    return new RestClient({ baseUrl: this.vmmApp.url, app: 'operator', token });
  }

  vmmGuestClient(vm: { id: number; token: string }): VmmClient {
    return new VmmClient(this.vmmRest(vm.token), vm.id);
  }

  async createVm(spec: { name: string; memoryMiB?: number; vcpus?: number; devices?: string[] }, traceparent?: string): Promise<{ id: number; token: string }> {
    const res = await http('POST', `${this.vmmApp.url}/v1/vms`, {
      token: VMM_ADMIN,
      traceparent,
      body: { memoryMiB: 16, vcpus: 1, devices: [], ...spec },
    });
    if (res.status !== 201) throw new Error(`create vm: ${res.status} ${res.text}\n${this.vmmApp.tail()}\n${this.host.tail()}`);
    return res.body as { id: number; token: string };
  }

  async stop(): Promise<void> {
    await killAll();
    // Killed hosts leave their guest-RAM files in /dev/shm (a crash does); the next boot would sweep them, do it now.
    sweepShmOrphans();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, deadlineMs = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} not reached within ${deadlineMs} ms${last ? `: ${String(last)}` : ''}`);
}
