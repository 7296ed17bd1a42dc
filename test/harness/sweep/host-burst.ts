// The host kernel SIGKILLed in the middle of a burst (issue 11): tenants hammer it with journaled calls, each in a
// trace of its own; once enough have been answered the host is killed; it is started again on the same data and
// port. Every call it answered (2xx) must have its row in the journal (DESIGN §6: a change and its row are one
// commit, answered after it), and the VMM must bring its VMs back by itself (apps/vmm/src/vm/host-reconnect.ts).
import { http, newTraceparent, type Stack, VMM_ADMIN, AUDIT } from '../stack';
import { bindWorks, DEVICE, type Vm } from './flow';

export interface BurstFigures {
  calls: number;
  acknowledged: number;
  missing: string[];
  /** From the host's restart to every VM running again. */
  vmsBackMs: number;
  vpasid: number;
}

interface Row {
  seq: number;
  traceId: string;
  errno: string | null;
}

/** Every row of the host's journal (keyset pages). */
async function journalTraces(url: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (let after = 0; ; ) {
    const res = await http('GET', `${url}/v1/audit/events?limit=10000&afterSeq=${after}`, { token: AUDIT });
    const rows = res.body as Row[];
    if (res.status !== 200) throw new Error(`GET /v1/audit/events: ${res.status} ${res.text}`);
    if (rows.length === 0) return out;
    for (const r of rows) {
      if (typeof r.traceId !== 'string') throw new Error('journal rows carry no traceId');
      if (r.errno === null) out.add(r.traceId);
    }
    after = rows[rows.length - 1].seq;
  }
}

/**
 * `workers` tenants, each a host process calling in a loop (alloc an ioasid, mmap a page, open an ioasid fd), until
 * the host dies; it is killed once `killAfter` calls were answered.
 */
export async function hostBurst(s: Stack, opts: { workers: number; killAfter: number }): Promise<BurstFigures> {
  const vms: Vm[] = [await s.createVm({ name: 'burst-1', devices: [DEVICE] }), await s.createVm({ name: 'burst-2', devices: ['0000:6b:01.0'] })];
  const acked: Array<{ traceId: string; what: string }> = [];
  let calls = 0;
  let dead = false;
  let killed!: () => void;
  const killNow = new Promise<void>((r) => (killed = r));
  const worker = async (w: number): Promise<void> => {
    const p = await s.hostProcess(`burst-${w}`);
    const fd = await p.k.openIoasid();
    for (let i = 0; !dead; i++) {
      const { traceId, traceparent } = newTraceparent();
      const [method, path, body] =
        i % 3 === 0 ? ['POST', `/v1/ioasid/${fd}/ioasids`, undefined] : i % 3 === 1 ? ['POST', `/v1/processes/${p.pid}/mmap`, { length: 4096 }] : ['POST', '/v1/ioasid', undefined];
      calls++;
      const res = await http(method, `${s.host.url}${path}`, { token: p.token, body, traceparent }).catch(() => null);
      if (!res) break;
      if (res.status < 300) {
        acked.push({ traceId, what: `${method} ${path}` });
        if (acked.length === opts.killAfter) killed();
      }
    }
  };
  const running = Promise.all(Array.from({ length: opts.workers }, (_, w) => worker(w)));
  await killNow;
  const port = s.host.port;
  s.host.signal('SIGKILL');
  await s.host.exited;
  dead = true;
  await running;
  const t0 = Date.now();
  await s.startHost({ PORT: String(port) });
  const have = await journalTraces(s.host.url);
  const missing = acked.filter((a) => !have.has(a.traceId)).map((a) => `${a.what} (trace ${a.traceId})`);
  for (const vm of vms) {
    for (;;) {
      const r = await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN });
      if ((r.body as { state: string }).state === 'running') break;
      if (Date.now() - t0 > 30_000) throw new Error(`VM ${vm.id} not running again 30 s after the host's restart: ${r.text}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  const vmsBackMs = Date.now() - t0;
  const vpasid = await bindWorks(s.vmmApp.url, vms[0]);
  return { calls, acknowledged: acked.length, missing, vmsBackMs, vpasid };
}
