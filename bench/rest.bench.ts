import { HostKernelClient } from '../libs/shared/src/http/host-kernel.client';
import { RestClient } from '../libs/shared/src/http/rest-client';
import { IA32_PASID_VALID as VALID } from '../libs/shared/src/x86/msr.constants';
import { AUDIT, type Stack } from '../test/harness/stack';
import { BenchClient } from './client';
import { type BenchRow, type Floors, time, type Timing, timeInterleaved } from './table';

/** A host process of its own and its client (the VMM's transport, with the process's token). */
export async function hostProcess(stack: Stack, comm: string): Promise<{ pid: number; k: HostKernelClient }> {
  const p = await stack.hostClient().createProcess(comm);
  return { pid: p.pid, k: new HostKernelClient(new RestClient({ baseUrl: stack.host.url, app: 'vmm', token: p.token })) };
}

/**
 * rest.noop: one journaled no-op call from the VMM's transport to the host kernel (WRMSR IA32_PASID=0 by a host
 * process: validated, applied, journaled in SQLite), p50, beside hop + insert. With `enqcmd`, also
 * rest.enqcmd.noop (ENQCMD of a noop descriptor by a host process, beside rest.noop), the two timed in turns
 * (timeInterleaved): their ratio is the row, and timed one after the other it moved with the machine's speed.
 */
export async function restNoopRows(stack: Stack, floors: Floors, opts: { enqcmd: boolean; n?: number }): Promise<BenchRow[]> {
  const n = opts.n ?? 2000;
  const { pid, k } = await hostProcess(stack, 'bench');
  const noop = (): Promise<unknown> => k.wrmsr(pid, 0);
  let call: Timing;
  let enqcmd: BenchRow | null = null;
  if (opts.enqcmd) {
    const e = await enqcmdWorld(stack);
    let t: Timing;
    [call, t] = await timeInterleaved(n, noop, e.submit);
    enqcmd = await e.row(t, call.p50Us);
  } else {
    call = await time(n, noop);
  }
  // Every call was journaled: the host's audit plane has a cpu.wrmsr row of this process per call (warm-up included).
  const audit = new BenchClient(stack.host.url);
  const rows = await audit.call<unknown[]>('GET', `/v1/audit/events?operation=cpu.wrmsr&actor=pid:${pid}&limit=10000`, { token: AUDIT });
  await audit.close();
  if (rows.length !== 2 * n) throw new Error(`rest.noop: ${rows.length} cpu.wrmsr rows journaled for ${2 * n} calls (${n} of them warm-up)`);
  const noopRow: BenchRow = {
    id: 'rest.noop',
    name: 'journaled no-op VMM→host (REST)',
    value: call.p50Us,
    unit: 'µs p50/op',
    floor: 'hop + insert',
    floorValue: floors.hop + floors.insert,
    note: `mean ${call.perOpUs.toFixed(0)} µs, p99 ${call.p99Us.toFixed(0)} µs; ${rows.length} rows journaled${enqcmd ? '; timed in turns with rest.enqcmd.noop, blocks of 50' : ''}`,
  };
  return enqcmd ? [noopRow, enqcmd] : [noopRow];
}

/** A host process whose mm is bound to a PASID allowed on a device, IA32_PASID set: ENQCMD of noops with records. */
async function enqcmdWorld(stack: Stack): Promise<{ submit: (i: number) => Promise<void>; row: (t: Timing, noopP50Us: number) => Promise<BenchRow> }> {
  const { pid, k } = await hostProcess(stack, 'enqcmd');
  const buf = await k.mmap(pid, 4096);
  // Touched, so the completion records land: a device reaches an untouched page only through a page request.
  await k.writeMemory(pid, buf, Buffer.alloc(4096));
  const fd = await k.openIoasid();
  const p = await k.alloc(fd);
  await k.bindPgtbl(fd, p, { kind: 'mm' });
  const dev = await k.openDevice('0000:6a:01.0');
  await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
  await k.wrmsr(pid, VALID + p);
  let retries = 0;
  let submitted = 0;
  const submit = async (i: number): Promise<void> => {
    const r = await k.enqcmd(pid, dev, { op: 'noop', completion: buf + (i % 128) * 32 });
    submitted++;
    if (r.result === 'retry') retries += 1;
    else if (r.result !== 'accepted') throw new Error(`enqcmd: ${JSON.stringify(r)}`);
  };
  const row = async (t: Timing, noopP50Us: number): Promise<BenchRow> => {
    // The noops ran: their completion records say success (status byte 1).
    const records = await k.readMemory(pid, buf, 128 * 32);
    let done = 0;
    for (let i = 0; i < 128; i++) if (records[i * 32] === 1) done++;
    if (done === 0) throw new Error('rest.enqcmd.noop: no completion record written');
    await k.killProcess(pid);
    return {
      id: 'rest.enqcmd.noop',
      name: 'ENQCMD noop, host process (REST)',
      value: t.p50Us,
      unit: 'µs p50/op',
      floor: 'rest.noop',
      floorValue: noopP50Us,
      note: `mean ${t.perOpUs.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs, ZF=1 ${retries}/${submitted}, ${done}/128 records success`,
    };
  };
  return { submit, row };
}
