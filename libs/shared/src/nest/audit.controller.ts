import { Controller, Get, Header, Inject, Query, Req } from '@nestjs/common';
import type { Request } from 'express';
import { mergeEvents } from '../audit/merge';
import type { AuditPeers } from '../audit/peers';
import { renderSequence } from '../audit/sequence';
import type { CommonConfig } from '../config';
import { KernelError } from '../errno';
import { RestClient } from '../http/rest-client';
import type { Journal, JournalEvent } from '../journal/journal';
import { AuditQueryDto } from './audit.dto';
import { Auth, bearer } from './auth';
import { APP_CONFIG, AUDIT_PEERS, JOURNAL } from './tokens';

/** The audit plane is the operator's: with AUDIT_TOKEN set, a VM or process token does not open it. */
export function authorizeAudit(config: CommonConfig, req: Request): void {
  if (!config.auditToken) return;
  const token = bearer(req);
  if (!token) throw new KernelError('EACCES', 'the audit plane needs the audit token', 401);
  if (token !== config.auditToken) throw new KernelError('EACCES', 'not the audit token', 401);
}

/** The audit plane (operator-facing): this app's journal, optionally merged with its peers'. */
@Auth('none')
@Controller({ path: 'audit', version: '1' })
export class AuditController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: CommonConfig,
    @Inject(JOURNAL) private readonly journal: Journal,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
  ) {}

  /** Journal rows, oldest first; `federate=true` adds the rows of peer apps (deduplicated). */
  @Get('events')
  events(@Query() q: AuditQueryDto, @Req() req: Request): Promise<JournalEvent[]> {
    authorizeAudit(this.config, req);
    return this.collect(q, q.federate ?? false);
  }

  /** A Mermaid `sequenceDiagram` of a trace (or a time range) across every app reachable from here. */
  @Get('sequence')
  @Header('content-type', 'text/plain; charset=utf-8')
  async sequence(@Query() q: AuditQueryDto, @Req() req: Request): Promise<string> {
    authorizeAudit(this.config, req);
    if (!q.trace && q.since === undefined) throw new KernelError('EINVAL', 'give a trace id (trace=) or a time range (since=, until=)');
    const events = await this.collect(q, q.federate ?? true);
    return renderSequence(events, q.trace ? `trace ${q.trace}` : undefined, { labels: q.labels ?? true });
  }

  private async collect(q: AuditQueryDto, federate: boolean): Promise<JournalEvent[]> {
    const local = await this.journal.events({
      traceId: q.trace,
      operation: q.operation,
      object: q.object,
      actor: q.actor,
      since: q.since,
      until: q.until,
      limit: q.limit,
      afterSeq: q.afterSeq,
      instance: q.instance,
    });
    const depth = q.depth ?? 3;
    const peers = this.peers.list();
    if (!federate || depth === 0 || peers.length === 0) return local;
    const remote = await Promise.all(
      peers.map((url) =>
        new RestClient({ baseUrl: url, app: this.config.app, timeoutMs: 5000, token: this.config.auditToken ?? undefined })
          .get<JournalEvent[]>('/v1/audit/events', {
            trace: q.trace,
            operation: q.operation,
            object: q.object,
            actor: q.actor,
            since: q.since,
            until: q.until,
            limit: q.limit,
            federate: true,
            depth: depth - 1,
          })
          // A peer that is down leaves its part of the picture out, not the whole answer.
          .catch(() => [] as JournalEvent[]),
      ),
    );
    return mergeEvents([local, ...remote]);
  }
}
