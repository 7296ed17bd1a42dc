// One step of a scenario as the runner runs it (DESIGN §9): the request(s), a wait until the stack is quiet (unless
// the step leaves it running on), the saved answer, the invariant checks when the scenario expects them, and the
// step's expectations. The scenario runner and the fuzzer both run every step through ScenarioSession.step, so
// a scenario the fuzzer writes runs exactly as the fuzzer ran it: the same turns between the same sends, the same
// observations at the same points (races included).
import { InvariantMonitor, sourceFor, type StepCall, type StepRecord, type Violation } from '../invariants';
import type { StackResponse } from '../transport';
import type { Step } from './parse';
import { matches, resolve, runStep, type StepContext } from './steps';

/** A step that leaves the stack running on (sent in the background, or only yielding): no quiesce after it. */
export const settles = (step: Step): boolean => !step.background && step.kind !== 'yield';

/**
 * Runs one step as a scenario does: its request(s), then, unless it leaves the stack running on, a wait until the
 * stack is quiet; `as:` saves the answer. The fuzzer runs its operations through this too, so a scenario it
 * writes runs exactly as the fuzzer ran it (races included: the same turns between the same sends).
 */
export async function executeStep(ctx: StepContext, step: Step): Promise<StackResponse> {
  const res = await runStep(ctx, step);
  if (settles(step)) await ctx.transport.quiesce();
  if (step.as) ctx.vars.set(step.as, res.body);
  return res;
}

/** What a step asked for, as the invariant checks see it: a raw call as such, any other step by its kind. */
export function stepRecord(ctx: StepContext, step: Step, res: StackResponse): StepRecord {
  const event = ['kill', 'restart', 'advance', 'boot-guest', 'yield', 'wait-for'].includes(step.kind);
  let call: StepCall;
  try {
    const s = resolve(step.spec, ctx.vars) as Record<string, unknown>;
    call =
      step.kind === 'call'
        ? { app: String(s.app), ...(s.vm !== undefined ? { vm: Number(s.vm) } : {}), method: String(s.method).toUpperCase(), path: String(s.path), body: s.body ?? null, principal: String(s.principal ?? 'none'), response: res }
        : { app: step.kind.endsWith('-vm') ? 'vmm' : 'guest', method: step.kind, path: step.kind, body: s, principal: 'none', response: res };
  } catch {
    call = { app: 'guest', method: step.kind, path: step.kind, body: null, principal: 'none', response: res };
  }
  return { label: `${step.kind} (line ${step.line})`, calls: event || step.kind === 'expect' ? [] : [call], event };
}

/** Runs steps on one stack, watching the invariants if asked to; `violations` holds every one found so far. */
export class ScenarioSession {
  readonly violations: Violation[] = [];
  /** Answers of background requests that came back during the last step (also in that step's record). */
  background: StackResponse[] = [];
  private last: StackResponse = { status: 200, body: null };
  private calls: StepCall[] = [];

  private constructor(
    readonly ctx: StepContext,
    readonly monitor: InvariantMonitor | null,
  ) {}

  /** A session on a started, quiet stack; with `watch`, the invariants are checked from this first observation on. */
  static async open(ctx: StepContext, watch: boolean): Promise<ScenarioSession> {
    const session = new ScenarioSession(ctx, watch ? new InvariantMonitor(sourceFor(ctx.transport)) : null);
    if (session.monitor) session.violations.push(...(await session.monitor.start()));
    return session;
  }

  /** Runs `step` (an `expect` step checks the previous answer); its answer, and the expectation it failed, if any. */
  async step(step: Step): Promise<{ res: StackResponse; problem: string | null }> {
    this.background = [];
    if (step.kind !== 'expect') {
      this.last = await executeStep(this.ctx, step);
      if (this.monitor) {
        const record = stepRecord(this.ctx, step, this.last);
        this.calls.push(...record.calls);
        if (settles(step)) {
          // The background requests answered meanwhile count as this step's calls (their statuses are checked).
          this.background = this.ctx.transport.backgroundAnswers.splice(0);
          for (const response of this.background) this.calls.push({ app: 'background', method: 'background', path: 'background request', body: null, principal: 'none', response });
          this.violations.push(...(await this.monitor.observe({ ...record, calls: this.calls })));
          this.calls = [];
        }
      }
    }
    const problem = (await check(this.ctx, step, this.last)) ?? invariantProblem(step, this.violations);
    return { res: this.last, problem };
  }
}

/** `expect: { invariants: true | [names] }`: every (or each named) invariant held after every step so far. */
function invariantProblem(step: Step, violations: Violation[]): string | null {
  const want = step.expect?.invariants;
  if (want === undefined || want === false) return null;
  const names = Array.isArray(want) ? want.map(String) : null;
  const hit = violations.filter((v) => !names || names.includes(v.check));
  return hit.length ? `invariant ${hit[0].check} violated: ${hit[0].message}${hit.length > 1 ? ` (and ${hit.length - 1} more)` : ''}` : null;
}

/** A step's expectations: on its own answer (result, errno, status), and on the stack (bytes, pool, pasid). */
async function check(ctx: StepContext, step: Step, res: StackResponse): Promise<string | null> {
  const e = step.expect ? (resolve(step.expect, ctx.vars) as Record<string, unknown>) : null;
  const errno = (res.body as { errno?: string } | null)?.errno;
  if (!e) return res.status >= 300 && step.kind !== 'expect' ? `answered ${res.status} ${errno ?? ''}: ${(res.body as { message?: string } | null)?.message ?? JSON.stringify(res.body)}` : null;
  if (e.errno !== undefined && errno !== e.errno) return `expected errno ${String(e.errno)}, got ${res.status} ${errno ?? '(success)'}`;
  if (e.errno === undefined && e.status === undefined && res.status >= 300 && step.kind !== 'expect') return `answered ${res.status} ${errno ?? ''}`;
  if (e.status !== undefined && res.status !== e.status) return `expected status ${String(e.status)}, got ${res.status}`;
  if (e.result !== undefined) {
    const m = matches(res.body, e.result);
    if (m) return `result ${m}`;
  }
  if (e.bytes !== undefined) {
    const b = e.bytes as { vm: number; pid: number; gva: number; length: number; pattern?: number; data?: string };
    const r = await ctx.transport.request({ app: 'guest', vm: b.vm, method: 'GET', path: `/v1/processes/${b.pid}/memory?gva=${b.gva}&length=${b.length}` });
    const got = Buffer.from((r.body as { data?: string }).data ?? '', 'base64');
    const want = b.data !== undefined ? Buffer.from(b.data, 'base64') : Buffer.alloc(b.length, b.pattern ?? 0);
    if (!got.equals(want)) return `bytes at gva 0x${b.gva.toString(16)}: ${got.length} bytes differ from the expected ${want.length}`;
  }
  if (e.pool !== undefined) {
    const r = await ctx.transport.request({ app: 'host-kernel', method: 'GET', path: '/v1/hw/pasids', token: ctx.operator.tokenOf('host-kernel', 'admin') });
    const m = matches(r.body, e.pool);
    if (m) return `PASID pool ${m}`;
  }
  if (e.pasid !== undefined) {
    const p = e.pasid as { pasid: number };
    const r = await ctx.transport.request({ app: 'host-kernel', method: 'GET', path: `/v1/hw/pasids?pasid=${p.pasid}`, token: ctx.operator.tokenOf('host-kernel', 'admin') });
    const m = matches(r.body, p);
    if (m) return `host PASID ${p.pasid}: ${m}`;
  }
  return null;
}

