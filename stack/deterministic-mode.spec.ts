// Deterministic mode (DESIGN §9) on the in-process stack: the same seed gives the same admin tokens, VM and
// process tokens and trace ids, run after run; another seed or none gives others.
import { LogicalTimers, realTimers } from '@app/shared/timers';
import { allRows, InProcessStack } from './in-process-stack';
import { advance, quiesce } from './stack-events';

async function run(seed?: number): Promise<{ tokens: string[]; traces: string[] }> {
  const stack = await InProcessStack.create(seed === undefined ? {} : { seed });
  try {
    const vm = await stack.createVm({ name: 'seeded', devices: ['0000:6a:01.0'] });
    const proc = await stack.call<{ pid: number; token: string }>({ app: 'host-kernel', method: 'POST', path: '/v1/processes', body: { comm: 'p' } });
    const rows = [...(await allRows(stack.host.journal)), ...(await allRows(stack.vmm.journal))];
    return { tokens: [stack.hostAdminToken, stack.vmmAdminToken, vm.token, proc.token], traces: rows.map((r) => `${r.traceId}/${r.spanId}`) };
  } finally {
    await stack.close();
  }
}

describe('deterministic mode (SEED)', () => {
  it('the same seed gives the same tokens and trace ids; another seed, or none, gives others', async () => {
    const a = await run(42);
    const b = await run(42);
    expect(b).toEqual(a);
    expect(new Set(a.tokens).size).toBe(a.tokens.length);
    const c = await run(43);
    const none = await run();
    for (const other of [c, none]) {
      expect(other.tokens.some((t, i) => t === a.tokens[i])).toBe(false);
      expect(other.traces.some((t, i) => t === a.traces[i])).toBe(false);
    }
  });
});

describe('waits in deterministic mode', () => {
  it('run on the logical clock: a host timer fires when the operator advances time past it, not before', async () => {
    const stack = await InProcessStack.create({ seed: 1 });
    try {
      expect(stack.host.timers).toBeInstanceOf(LogicalTimers);
      const fired: number[] = [];
      stack.host.timers.after(1000, () => fired.push(stack.host.journal.clock.peek()));
      await stack.createVm({ name: 'busy' }); // rows move the clock, by far less than 1000 ticks
      await quiesce(stack);
      expect(fired).toEqual([]);
      await advance(stack, 999);
      await quiesce(stack);
      expect(fired).toHaveLength(1);
      // The advance is an input of the operator's own journal.
      expect((await allRows(stack.operatorJournal)).map((r) => [r.operation, r.input, r.request])).toEqual([['operator.advance', true, { kind: 'advance', app: 'operator', ms: 999 }]]);
    } finally {
      await stack.close();
    }
    const plain = await InProcessStack.create();
    try {
      expect(plain.host.timers).toBe(realTimers);
    } finally {
      await plain.close();
    }
  });
});
