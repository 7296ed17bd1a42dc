// Replay on the in-process stack: a recording replays clean; a row edited in it is named exactly; a behaviour
// change (a shallower work queue) shows at the first row it changes; time travel around a DESTROY; a value
// watched through a replay.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RECORDING_FILE, readRecording, type RecordedRow, RecordingError } from './recording';
import { replayMain } from './cli';
import { replay } from './replayer';
import { parseStatePath, StatePathError, valueAt } from './state';
import { watchValue } from './watch';
import { parseScenario } from './scenario/parse';
import { runScenario } from './scenario/runner';

const SCENARIOS = join(__dirname, '..', 'scenarios');
const out = mkdtempSync(join(tmpdir(), 'replay-spec-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Records a shipped scenario in process (without its self-replay) and returns the recording's directory. */
async function record(name: string): Promise<string> {
  const dir = join(out, name);
  const r = await runScenario(parseScenario(join(SCENARIOS, `${name}.yaml`)), { inProcess: true, outDir: dir, replay: false });
  expect(r.failure).toBeNull();
  return dir;
}

const lines = (dir: string): RecordedRow[] => readFileSync(join(dir, RECORDING_FILE), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as RecordedRow);
const rewrite = (dir: string, rows: RecordedRow[]): void => writeFileSync(join(dir, RECORDING_FILE), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

describe('replay, in process', () => {
  it('a recording whose one result was edited diverges at exactly that row, and nowhere before', async () => {
    const dir = await record('unbind-teardown');
    const rows = lines(dir);
    const target = rows.find((r) => r.journal === 'host-kernel' && r.operation === 'ioasid.alloc' && r.errno === null && rows.indexOf(r) > rows.length / 2) as RecordedRow;
    const edited = { ...target, result: { ioasid: (target.result as { ioasid: number }).ioasid + 1000 } };
    rewrite(dir, rows.map((r) => (r === target ? edited : r)));
    const result = await replay(readRecording(dir), { inProcess: true });
    expect(result.divergence).toMatchObject({ journal: 'host-kernel', seq: target.seq, fields: ['result'] });
    expect(result.divergence?.replayed?.result).toEqual(target.result);
    // Every row before it, in every journal, compared equal.
    const before = rows.filter((r) => r.journal === 'host-kernel' && r.seq < target.seq).length;
    expect(result.compared).toBeGreaterThanOrEqual(before);
  });

  it('a shallower work queue (the behaviour change under review) diverges at the first ENQCMD it refuses', async () => {
    const dir = await record('enqcmd-translation');
    const rec = readRecording(dir);
    const host = rec.journals.get('host-kernel') as RecordedRow[];
    const stall = host.find((r) => r.operation === 'hw.engine') as RecordedRow;
    const queued = host.filter((r) => r.operation === 'kvm.vcpu_enqcmd' && r.seq > stall.seq);
    const depth = 2;
    expect(queued.slice(0, depth + 1).map((r) => r.result)).toEqual(Array(depth + 1).fill({ result: 'accepted' }));
    const devices = rec.config.devices.map((d) => ({ ...d, wqDepth: depth }));
    const result = await replay(rec, { inProcess: true, override: { devices } });
    expect(result.divergence).toMatchObject({ journal: 'host-kernel', seq: queued[depth].seq, fields: ['result'] });
    expect(result.divergence?.replayed?.result).toMatchObject({ result: 'retry' });
    expect(result.divergence?.input?.request).toMatchObject({ kind: 'http', app: 'vmm', path: expect.stringMatching(/\/vcpus\/0\/enqcmd$/) });
  });

  it('time travel: just before DESTROY the ioasid has its device holder; right after it is parked, still held', async () => {
    const dir = await record('destroy-with-holders');
    const rec = readRecording(dir);
    const destroy = (rec.journals.get('host-kernel') as RecordedRow[]).find((r) => r.operation === 'ioasid.destroy') as RecordedRow;
    const ioasid = Number((destroy.object as string).split(':')[1]);
    const before = { journal: 'host-kernel', seq: destroy.seq - 1 };
    const after = { journal: 'host-kernel', seq: destroy.seq };
    const result = await replay(rec, { inProcess: true, watch: [before, after] });
    expect(result.divergence).toBeNull();
    const at = (ref: typeof before) => result.states.get(`${ref.journal}:${ref.seq}`)?.host.ioasids.find((i) => i.id === ioasid);
    expect(at(before)).toMatchObject({ state: 'bound', holders: { devices: ['0000:6a:01.0/pasid'] } });
    expect(at(before)?.refs).toBe(2); // the owning fd and the device attachment
    expect(at(after)).toMatchObject({ state: 'destroyed', holders: { devices: ['0000:6a:01.0/pasid'] }, refs: 1 });
    expect(result.states.get(`host-kernel:${after.seq}`)?.host.pool).toEqual(expect.objectContaining({ parked: 1 }));
  });

  it('watch: an ioasid followed from ALLOC to its free, each change at the commit of the call that made it', async () => {
    const dir = await record('destroy-with-holders');
    const rec = readRecording(dir);
    const host = rec.journals.get('host-kernel') as RecordedRow[];
    const destroy = host.find((r) => r.operation === 'ioasid.destroy') as RecordedRow;
    const ioasid = Number((destroy.object as string).split(':')[1]);
    const state = await watchValue(rec, parseStatePath(`host.ioasids[id=${ioasid}].state`));
    expect(state.result.divergence).toBeNull();
    expect(state.initial).toBeUndefined(); // no ioasid before the first input
    expect(state.changes.map((c) => [c.operation, c.before, c.after])).toEqual([
      ['ioasid.alloc', undefined, 'allocated'],
      ['ioasid.bind_pgtbl', 'allocated', 'bound'],
      ['ioasid.destroy', 'bound', 'destroyed'],
      // Parked until its last holder, the device, lets go: then it is gone.
      ['vfio.disallow_ioasid', 'destroyed', undefined],
    ]);
    expect(state.changes[2].at).toBe(`host-kernel:${destroy.seq}`);
    const disallow = host.find((r) => r.operation === 'vfio.disallow_ioasid' && r.seq > destroy.seq) as RecordedRow;
    expect(state.changes[3].at).toBe(`host-kernel:${disallow.seq}`);
    // The pool, read the same way: the PASID is parked at the DESTROY and freed at the DISALLOW.
    const parked = await watchValue(rec, parseStatePath('$.host.pool.parked'));
    expect(parked.initial).toBe(0);
    expect(parked.changes.map((c) => [c.at, c.before, c.after])).toEqual([
      [`host-kernel:${destroy.seq}`, 0, 1],
      [`host-kernel:${disallow.seq}`, 1, 0],
    ]);
    // The CLI prints the same as JSON; a path it cannot read is a usage error before anything is replayed.
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await replayMain([dir, '--watch', 'host.pool.parked'])).toBe(0);
      expect(JSON.parse(log.mock.calls[0][0] as string)).toEqual({ watch: 'host.pool.parked', inputs: rec.rows.filter((r) => r.input).length, initial: 0, changes: parked.changes });
      await expect(replayMain([dir, '--watch', 'guest.processes'])).rejects.toThrow(/must start with host or vmm/);
      expect(log).toHaveBeenCalledTimes(1);
    } finally {
      log.mockRestore();
    }
  });

  it('watch paths: keys, indexes and [key=value] selectors; a malformed path or another root is refused', () => {
    const part = { ioasids: [{ id: 3, state: 'bound' }, { id: 5, state: 'destroyed', holders: { devices: ['a'] } }] };
    expect(valueAt(part, parseStatePath('host.ioasids[id=5].holders.devices[0]'))).toBe('a');
    expect(valueAt(part, parseStatePath('host.ioasids[1].state'))).toBe('destroyed');
    expect(valueAt(part, parseStatePath('host.ioasids[id=7].state'))).toBeUndefined();
    expect(valueAt(part, parseStatePath('host.ioasids.length'))).toBe(2); // how many: an array's own length
    expect(parseStatePath('vmm.vms[id=1].shadow').root).toBe('vmm');
    expect(() => parseStatePath('host.ioasids[id=5')).toThrow(new StatePathError('watch path "host.ioasids[id=5": cannot read "[id=5" (steps are .key, [n] or [key=value])'));
    expect(() => parseStatePath('guest.processes')).toThrow(/must start with host or vmm/);
    expect(() => parseStatePath('')).toThrow(StatePathError);
  });

  it('a truncated or corrupt recording.jsonl is refused naming the line', async () => {
    const dir = await record('malicious-guest');
    const text = readFileSync(join(dir, RECORDING_FILE), 'utf8');
    const n = text.trimEnd().split('\n').length;
    writeFileSync(join(dir, RECORDING_FILE), text.slice(0, text.length - 20));
    expect(() => readRecording(dir)).toThrow(new RecordingError(`${join(dir, RECORDING_FILE)} line ${n}: truncated (the last line has no newline)`));
    const rows = text.trimEnd().split('\n');
    rows[2] = '{"journal": "vmm", "seq":';
    writeFileSync(join(dir, RECORDING_FILE), rows.join('\n') + '\n');
    expect(() => readRecording(dir)).toThrow(/line 3: not JSON/);
    rows[2] = JSON.stringify({ ...JSON.parse(text.split('\n')[2]), operation: undefined });
    writeFileSync(join(dir, RECORDING_FILE), rows.join('\n') + '\n');
    expect(() => readRecording(dir)).toThrow(/line 3: field "operation" is missing or malformed/);
  });
});
