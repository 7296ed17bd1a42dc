// The summary `npm run bench -- --profile` prints of each spawned app's V8 CPU profile (no benchmark runs here).
import { summarizeProfile } from './profiles';

const frame = (id: number, functionName: string, url = '', lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });

describe('a CPU profile summed up', () => {
  it('names the app by its main script, counts idle samples, and ranks functions by their own samples', () => {
    const main = 'file:///repo/dist/apps/host-kernel/apps/host-kernel/src/main.js';
    const profile = {
      nodes: [frame(1, '(root)'), frame(2, '(idle)'), frame(3, '', main), frame(4, 'commit', 'file:///repo/dist/libs/journal/journal.js', 136), frame(5, 'writev'), frame(6, '(program)')],
      // 10 samples: 4 idle, 3 commit, 2 writev, 1 (program)
      samples: [2, 2, 4, 5, 4, 2, 6, 4, 5, 2],
      startTime: 1_000_000,
      endTime: 3_500_000,
    };
    const s = summarizeProfile('CPU.1.cpuprofile', profile, 5);
    expect(s.app).toBe('host-kernel');
    expect(s.seconds).toBe(2.5);
    expect(s.idlePct).toBe(40);
    expect(s.top).toEqual([
      { pct: 30, where: 'commit journal/journal.js:137' },
      { pct: 20, where: 'writev :1' },
    ]);
  });

  it('calls a profile without an app main script a worker thread', () => {
    const s = summarizeProfile('CPU.2.cpuprofile', { nodes: [frame(1, '(root)'), frame(2, 'run', 'node:internal/worker', 3)], samples: [2, 2], startTime: 0, endTime: 1 }, 3);
    expect(s.app).toBe('worker');
    expect(s.top).toEqual([{ pct: 100, where: 'run node:internal/worker:4' }]);
  });
});
