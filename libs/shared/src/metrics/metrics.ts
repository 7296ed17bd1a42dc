// Prometheus metrics of one app (DESIGN §12), on prom-client. The domain never imports this file: it keeps its
// own counts (IOTLB hits, faults by reason, descriptors by type, the PASID pool…) and each app's *-metrics.ts
// reads them when /metrics is scraped (collect-on-scrape). Only what happens at the app's edge — HTTP requests
// and committed journal rows — is counted here as it happens.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JournalStore } from '../journal/journal-store';

export const METRIC_PREFIX = 'ioasid_lab_';

/** Label values of one sample, by label name. */
export type Labels<L extends string> = Partial<Record<L, string | number>>;
/** What a domain read returns: one value, or a value per label set. */
export type Samples<L extends string> = number | Iterable<readonly [Labels<L>, number]>;

/** HTTP latency buckets in seconds: a loopback call is tens of microseconds to a few milliseconds. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class AppMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;

  constructor(
    readonly app: string,
    opts: { processMetrics?: boolean } = {},
  ) {
    this.registry.setDefaultLabels({ app });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
    this.httpRequests = new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'HTTP request latency, from the first byte read to the last byte written, by method and route template',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
  }

  /** A request answered: `route` is the template (`/v1/ioasid/:fd/ioasids`), never the raw path. */
  request(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpDuration.observe({ method, route }, seconds);
  }

  /** A gauge whose value the domain holds, read at each scrape. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Samples<L>): void {
    new Gauge<L>({ name: `${METRIC_PREFIX}${name}`, help, labelNames, registers: [this.registry], collect: refill(read, (g, labels, v) => (labels ? g.set(labels, v) : g.set(v))) });
  }

  /** A counter the domain keeps (it only grows), read at each scrape. */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Samples<L>): void {
    new Counter<L>({ name: `${METRIC_PREFIX}${name}`, help, labelNames, registers: [this.registry], collect: refill(read, (c, labels, v) => (labels ? c.inc(labels, v) : c.inc(v))) });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A collect() that resets a metric and puts the domain's current samples in it. */
function refill<M extends { reset(): void }, L extends string>(read: () => Samples<L>, put: (m: M, labels: Labels<L> | null, v: number) => void): (this: M) => void {
  return function (this: M): void {
    this.reset();
    const s = read();
    if (typeof s === 'number') put(this, null, s);
    else for (const [labels, v] of s) put(this, labels, v);
  };
}

/** Committed journal rows by operation and outcome (`ok` or the errno), counted as each write commits. */
export function journalMetrics(m: AppMetrics, store: JournalStore): void {
  const counts = new Map<string, { operation: string; outcome: string; n: number }>();
  store.onRows((rows) => {
    for (const r of rows) {
      const outcome = r.errno ?? 'ok';
      const key = `${r.operation}\0${outcome}`;
      const c = counts.get(key);
      if (c) c.n++;
      else counts.set(key, { operation: r.operation, outcome, n: 1 });
    }
  });
  m.counter('journal_rows_total', 'Journal rows committed, by operation and outcome (ok or the errno)', ['operation', 'outcome'], () =>
    [...counts.values()].map((c) => [{ operation: c.operation, outcome: c.outcome }, c.n] as const),
  );
}

/** Counts by a key, as [labels, value] samples. */
export function countBy<T, L extends string>(items: Iterable<T>, label: L, key: (item: T) => string, all: readonly string[] = []): Array<[Labels<L>, number]> {
  const counts = new Map<string, number>(all.map((k) => [k, 0]));
  for (const item of items) {
    const k = key(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => [{ [label]: k } as Labels<L>, n]);
}
