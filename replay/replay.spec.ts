// Replay on the in-process stack: a recording replays clean; a row edited in it is named exactly; a behaviour
// change (a shallower work queue) shows at the first row it changes; time travel around a DESTROY.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RECORDING_FILE, readRecording, type RecordedRow, RecordingError } from './recording';
import { replay } from './replayer';
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
