import { runInTrace } from '../trace';
import { parseStallPoints, type PortCall, StallKnob } from './stall-knob';

/** A port with an async call, a sync one, and `as` returning the port acting for someone else. */
class Port {
  readonly log: string[] = [];
  constructor(readonly who = 'root') {}
  as(who: string): Port {
    const p = new Port(who);
    (p as { log: string[] }).log = this.log;
    return p;
  }
  async alloc(n: number): Promise<number> {
    this.log.push(`${this.who}:alloc(${n})`);
    return n + 1;
  }
  name(): string {
    return this.who;
  }
}

const T1 = 'a'.repeat(32);
const T2 = 'b'.repeat(32);
const settled = async <T>(p: Promise<T>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('the stall knob', () => {
  it('parses points and refuses what is not one', () => {
    expect(parseStallPoints('mapPasid')).toEqual([{ method: 'mapPasid', nth: null, traceId: null }]);
    expect(parseStallPoints(` alloc#3,${T1}/destroy#2`)).toEqual([
      { method: 'alloc', nth: 3, traceId: null },
      { method: 'destroy', nth: 2, traceId: T1 },
    ]);
    expect(parseStallPoints('')).toEqual([]);
    for (const bad of ['alloc#0', 'alloc#x', '1abc', `${T1.slice(1)}/alloc`, 'alloc,,destroy', 'al-loc']) {
      expect(() => parseStallPoints(bad)).toThrow(/DEBUG_STALL_BEFORE/);
    }
  });

  it('with nothing asked, the port is returned as is', () => {
    const port = new Port();
    expect(new StallKnob('host', []).wrap(port, ['as'])).toBe(port);
  });

  it('stalls exactly the n-th call of a method, counted across every rebound port, until released', async () => {
    const stalls: PortCall[] = [];
    const knob = new StallKnob('host', parseStallPoints('alloc#2'), { onStall: (c) => stalls.push(c) });
    const root = new Port();
    const port = knob.wrap(root, ['as']);
    expect(await port.alloc(1)).toBe(2);
    const second = port.as('vm1').alloc(2);
    expect(await settled(second)).toBe(false);
    expect(root.log).toEqual(['root:alloc(1)']);
    expect(stalls).toEqual([{ port: 'host', method: 'alloc', nth: 2, traceId: null, nthInTrace: 2, async: true }]);
    expect(knob.stalled).toBe(1);
    // The third call is not stalled; sync methods pass through untouched.
    expect(await port.alloc(3)).toBe(4);
    expect(port.as('vm2').name()).toBe('vm2');
    expect(knob.release()).toBe(1);
    expect(await second).toBe(3);
    expect(root.log).toEqual(['root:alloc(1)', 'root:alloc(3)', 'vm1:alloc(2)']);
  });

  it('a point with a trace counts only that trace, and every call is reported with both counts', async () => {
    const calls: PortCall[] = [];
    const knob = new StallKnob('vmm', parseStallPoints(`${T2}/alloc#1`), { onCall: (c) => calls.push(c) });
    const port = knob.wrap(new Port());
    await runInTrace({ traceId: T1, spanId: null, caller: null }, () => port.alloc(1));
    port.name();
    const stalled = runInTrace({ traceId: T2, spanId: null, caller: null }, () => port.alloc(2));
    expect(await settled(stalled)).toBe(false);
    expect(calls.map((c) => [c.method, c.traceId, c.nth, c.nthInTrace, c.async])).toEqual([
      ['alloc', T1, 1, 1, true],
      ['name', null, 1, 1, false],
      ['alloc', T2, 2, 1, true],
    ]);
    knob.release();
    expect(await stalled).toBe(3);
  });

  it('a bare method stalls every call of it', async () => {
    const knob = new StallKnob('host', parseStallPoints('alloc'));
    const port = knob.wrap(new Port());
    const a = port.alloc(1);
    const b = port.alloc(2);
    expect([await settled(a), await settled(b)]).toEqual([false, false]);
    expect(knob.release()).toBe(2);
    expect(await Promise.all([a, b])).toEqual([2, 3]);
  });
});
