// The invariants of DESIGN §11 as named checks, one module per group (pasid-pool, refcounts, leaks, isolation,
// page-requests, vmm, calls, journals; registry.ts lists them). The fuzzer runs them after every operation; a
// scenario's `expect: { invariants: … }` and `npm run replay -- … --invariants` run the same list through
// InvariantMonitor (monitor.ts); the crash sweeps can import any check, or the monitor, from here.
export type { Check, CheckInput, Snapshot, StepCall, StepRecord, Violation } from './types';
export { InvariantMonitor } from './monitor';
export { InProcessSource, RestSource, type StateSource } from './observe';
export { CHECKS, checkNamed, runChecks } from './registry';
export { sourceFor } from './transport-source';
