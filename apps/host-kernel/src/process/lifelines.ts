// What the process routes need besides the command table: lifelines and the process record (the host kernel
// app implements it; the token lets the REST adapter ask for it without knowing the app).
import type { EventSink } from '@app/shared/lifeline/event-sink';
import type { HostCaller } from '../dispatch/op';
import type { ProcessInfo } from './process.ops';

export const PROCESS_LIFELINES = Symbol('PROCESS_LIFELINES');

export interface ProcessLifelines {
  attachLifeline(caller: HostCaller, pid: number, sink: EventSink): void;
  lifelineDropped(pid: number, sink: EventSink): Promise<void>;
  describeProcess(caller: HostCaller, pid: number): Promise<ProcessInfo & { exitReason?: string | null }>;
}
