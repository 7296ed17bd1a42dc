// The operator of a run (scenario runner, replayer): it issues inputs to a transport, and holds the token of
// every principal it has met — the admin tokens it set, and each token an answer handed out (a host process's
// from POST /v1/processes, a VM's from POST /v1/vms) — so an input that names `pid:103` or `vm:2` is sent
// with the token that principal has in *this* stack, never one copied from a recording.
import type { HttpInput } from '@app/shared/replay/input';
import type { StackResponse, Transport } from './transport';

/** What `principal: garbage` sends: the right shape for a bearer token, given to nobody. */
export const GARBAGE_TOKEN = 'garbage-0000000000000000000000000000';

export class Operator {
  private readonly tokens = new Map<string, string>();

  constructor(readonly transport: Transport) {}

  tokenOf(app: string, principal: string): string | null {
    if (principal === 'none') return null;
    // A hostile caller's (fuzzer, scenarios): a token nobody was given, or one app's token presented to another.
    if (principal === 'garbage') return GARBAGE_TOKEN;
    const other = /^(host-kernel|vmm)\|(.+)$/.exec(principal);
    if (other) return this.tokenOf(other[1], other[2]);
    if (principal === 'admin' && (app === 'host-kernel' || app === 'vmm')) return this.transport.adminToken(app);
    const t = this.tokens.get(`${app}|${principal}`);
    if (t === undefined) throw new Error(`no token known for ${principal} on ${app} (its creation is not in the run)`);
    return t;
  }

  /** Issues a REST input as `input.principal`; learns the tokens its answer hands out. */
  async http(input: HttpInput, opts: { traceparent?: string | null; background?: boolean } = {}): Promise<StackResponse> {
    const token = this.tokenOf(input.app, input.principal);
    const res = await this.transport.request({ app: input.app as 'host-kernel', vm: input.vm, method: input.method, path: input.path, body: input.body, token, traceparent: opts.traceparent, background: opts.background, principal: input.principal });
    this.learn(input, res);
    return res;
  }

  /** Boots VM `vm`'s guest with the VM's token. */
  boot(vm: number, traceparent: string | null, pageRequests?: 'ignore'): Promise<void> {
    return this.transport.boot(vm, this.tokenOf('vmm', `vm:${vm}`) as string, traceparent, pageRequests);
  }

  private learn(input: HttpInput, res: StackResponse): void {
    if (res.status !== 201 || input.method !== 'POST') return;
    const body = res.body as { pid?: number; id?: number; token?: string };
    if (typeof body?.token !== 'string') return;
    if (input.app === 'host-kernel' && input.path === '/v1/processes') this.tokens.set(`host-kernel|pid:${body.pid}`, body.token);
    if (input.app === 'vmm' && input.path === '/v1/vms') this.tokens.set(`vmm|vm:${body.id}`, body.token);
  }
}
