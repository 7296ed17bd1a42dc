// Replay speed (DESIGN §9): a recording of many guest SVA cycles (process, mmap, write, bind, ENQCMD memmove,
// unbind), replayed on a fresh in-process stack and on three fresh spawned apps: rows replayed (re-issued,
// quiesced and compared) per second. Floor: the in-process host journaling the ioasid alloc → bind → allow →
// disallow → destroy cycle through its door (what one journaled row costs with nothing to compare).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG, readRecording } from '../replay/recording';
import { replay } from '../replay/replayer';
import type { Scenario, Step } from '../replay/scenario/parse';
import { runScenario } from '../replay/scenario/runner';
import { allRows, InProcessStack } from '../stack/in-process-stack';
import type { BenchRow } from './table';

const step = (kind: string, spec: unknown, as?: string): Step => ({ kind, spec, as, background: false, line: 0 });

/** `cycles` guest SVA cycles on one VM. */
function cyclesScenario(cycles: number): Scenario {
  const steps: Step[] = [step('create-vm', { name: 'bench', memoryMiB: 64, devices: ['0000:6a:01.0'] }, 'vm'), step('boot-guest', '${vm.id}')];
  const vm = '${vm.id}';
  for (let i = 0; i < cycles; i++) {
    steps.push(
      step('process', { vm, name: `p${i}` }, 'p'),
      step('mmap', { vm, pid: '${p.pid}', length: 8192 }, 'm'),
      step('write', { vm, pid: '${p.pid}', gva: '${m.gva}', length: 4096, pattern: i & 0xff }),
      step('bind', { vm, pid: '${p.pid}' }),
      step('submit', { vm, pid: '${p.pid}', descriptor: { op: 'memmove', src: '${m.gva}', dst: '${m.gva}', length: 4096 } }),
      step('unbind', { vm, pid: '${p.pid}' }),
    );
  }
  return { file: 'bench', name: 'bench-cycles', description: '', config: { ...DEFAULT_CONFIG, seed: 1 }, steps };
}

/** µs per journaled host row of the alloc cycle, through the in-process door. */
async function journaledCycleFloor(n: number): Promise<number> {
  const stack = await InProcessStack.create({ seed: 1 });
  try {
    const { pid, k } = await stack.hostProcess('bench/floor');
    const fd = await k.openIoasid();
    const dev = await k.openDevice('0000:6a:01.0');
    const before = (await allRows(stack.host.journal)).length;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const id = await k.alloc(fd);
      await k.bindPgtbl(fd, id, { kind: 'iova' });
      await k.allowIoasid(dev, { ioasidFd: fd, ioasid: id, mode: 'pasid' });
      await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: id });
      await k.destroy(fd, id);
    }
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    const rows = (await allRows(stack.host.journal)).length - before;
    if (pid <= 0 || rows < 5 * n) throw new Error(`the floor journaled ${rows} rows for ${n} cycles`);
    return us / rows;
  } finally {
    await stack.close();
  }
}

export async function replayRows(opts: { cycles?: number; rest?: boolean } = {}): Promise<BenchRow[]> {
  const cycles = opts.cycles ?? 20;
  const out = mkdtempSync(join(tmpdir(), 'bench-replay-'));
  try {
    const rec = await runScenario(cyclesScenario(cycles), { inProcess: true, outDir: out, replay: false });
    if (rec.failure) throw new Error(`bench scenario: ${rec.failure}`);
    const recording = readRecording(out);
    const floor = await journaledCycleFloor(2000);
    const rows: BenchRow[] = [];
    for (const inProcess of opts.rest === false ? [true] : [true, false]) {
      const t0 = process.hrtime.bigint();
      const r = await replay(recording, { inProcess });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.divergence || r.compared !== recording.rows.length) throw new Error(`bench replay diverged at ${r.divergence?.journal}:${r.divergence?.seq}`);
      // The stack's start (over REST: spawning three apps, about 2 s) is not replay work: the row leaves it out and the
      // note gives it.
      const replaying = s - r.startMs / 1000;
      rows.push({
        id: inProcess ? 'replay.inproc' : 'replay.rest',
        name: `replay ${inProcess ? 'in-process' : 'over REST (3 spawned apps)'}: re-issue, quiesce, compare`,
        value: (replaying * 1e6) / r.compared,
        unit: 'µs/row',
        floor: 'journaled alloc cycle, in-process (per row)',
        floorValue: floor,
        note: `${Math.round(r.compared / replaying)} rows/s (${r.compared} rows, ${r.inputs} inputs in ${replaying.toFixed(2)} s; the stack started in ${(r.startMs / 1000).toFixed(2)} s before)`,
      });
    }
    return rows;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
