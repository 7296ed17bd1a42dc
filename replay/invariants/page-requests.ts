// DESIGN §10 under §11: a page request group waits only while something can answer it. Every pending group is
// on a route the IOMMU still has (DISALLOW, DESTROY and close answer theirs), is owned by a running process, and
// a group handed to a fault queue is in exactly one place there: unread, or read and waiting under a cookie.
import { check, type Check } from './types';

const GROUP = 'page-requests';

export const PAGE_REQUEST_CHECKS: Check[] = [
  check({
    name: 'pending-request-has-route',
    group: GROUP,
    rule: 'tearing a route down (DISALLOW, DESTROY, close) answers its page requests: a pending group is on a live route',
    run: ({ now }) => {
      const s = now.host;
      return s.pageRequests
        .filter((g) => !s.routes.some((r) => r.bdf === g.bdf && r.ppasid === g.ppasid && !r.blocked))
        .map((g) => `page request group ${g.seq} (${g.bdf} PASID ${g.ppasid} grpid ${g.grpid}) waits but no unblocked route of ${g.bdf} has PASID ${g.ppasid}`);
    },
  }),
  check({
    name: 'pending-request-has-owner',
    group: GROUP,
    rule: 'a pending page request group belongs to a running process (its fault queue or its own mm)',
    run: ({ now }) => {
      const running = new Set(now.host.processes.filter((p) => p.state === 'running').map((p) => p.pid));
      return now.host.pageRequests
        .filter((g) => g.owner !== null && !running.has(g.owner))
        .map((g) => `page request group ${g.seq} waits for process ${g.owner}, which is not running`);
    },
  }),
  check({
    name: 'queued-requests-accounted',
    group: GROUP,
    rule: 'a group handed to a fault queue waits there exactly once: unread, or read and waiting for its cookie',
    run: ({ now }) => {
      const s = now.host;
      const out: string[] = [];
      const pending = new Set(s.pageRequests.map((g) => g.seq));
      const queued = s.pageRequests.filter((g) => g.handler === 'queue').length;
      const held = s.faultQueues.reduce((n, q) => n + q.unread.length + q.awaiting.length, 0);
      if (queued !== held) out.push(`${queued} pending groups went to fault queues, the queues hold ${held} (unread + awaiting)`);
      for (const q of s.faultQueues) {
        for (const seq of q.unread) if (!pending.has(seq)) out.push(`fault queue ${q.pid}/${q.fd}/${q.id} holds group ${seq} unread, which the IOMMU no longer has pending`);
      }
      return out;
    },
  }),
];
