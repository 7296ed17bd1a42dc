// How replay and the scenario runner drive a stack, whichever it is (DESIGN §8): the three spawned apps over
// REST, or the in-process stack. Requests are REST-shaped on both; external events are recorded by the
// transport in the operator's journal as it causes them.
import type { JournalEvent } from '@app/shared/journal/journal';
import type { StackRequest, StackResponse } from '../stack/door/door';
import type { StackConfig } from './recording';

export type { StackRequest, StackResponse } from '../stack/door/door';

export interface Transport {
  readonly kind: 'in-process' | 'rest';
  readonly config: StackConfig;
  /** The admin token of `host-kernel` or `vmm` (the transport sets them). */
  adminToken(app: 'host-kernel' | 'vmm'): string;
  start(): Promise<void>;
  /** Answers of background requests, as they come back (the invariant checks take them with splice). */
  readonly backgroundAnswers: StackResponse[];
  /** A request; `background` ones are recorded in the operator's journal first and not awaited by the caller. */
  request(req: StackRequest & { background?: boolean; principal?: string }): Promise<StackResponse>;
  /** Starts (or restarts) the guest OS of VM `vm` with its token (`ignore`: it leaves page requests unanswered). */
  boot(vm: number, token: string, traceparent: string | null, pageRequests?: 'ignore'): Promise<void>;
  kill(app: 'vmm' | 'guest', vm?: number): Promise<void>;
  restart(app: 'vmm'): Promise<void>;
  advance(ms: number): Promise<void>;
  /** Waits until nothing is left to run and the journals are still; then the operator's clock is past every app's. */
  quiesce(): Promise<void>;
  /** Rows journaled since the last call, by journal (`operator`, `host-kernel`, `vmm`, `guest-<vm>`). */
  newRows(): Promise<Map<string, JournalEvent[]>>;
  /** Stops the stack where it stands (no shutdown rows) and writes every journal's database into `dir`. */
  saveDatabases(dir: string): Promise<void>;
  close(): Promise<void>;
}

/** The body of a 2xx answer, or an Error naming the call and its problem. */
export function bodyOf<T>(req: StackRequest, res: StackResponse): T {
  if (res.status >= 300) throw new Error(`${req.app} ${req.method} ${req.path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as T;
}
