import { Controller, Get, Header, Inject, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { federate } from '../audit/federation';
import type { AuditPeers } from '../audit/peers';
import { renderSequence } from '../audit/sequence';
import { sameToken } from '../auth/bearer';
import type { CommonConfig } from '../config';
import { KernelError } from '../errno';
import type { Journal, JournalEvent } from '../journal/journal';
import { AuditQueryDto } from './audit.dto';
import { Auth, bearer } from './auth';
import { APP_CONFIG, AUDIT_PEERS, JOURNAL } from './tokens';

/** The audit plane is the operator's: with AUDIT_TOKEN set, a VM or process token does not open it (constant time). */
export function authorizeAudit(config: CommonConfig, req: Request): void {
  if (!config.auditToken) return;
  const token = bearer(req);
  if (!token) throw new KernelError('EACCES', 'the audit plane needs the audit token', 401);
  if (!sameToken(token, config.auditToken)) throw new KernelError('EACCES', 'not the audit token', 401);
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
  events(@Query() q: AuditQueryDto, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<JournalEvent[]> {
    authorizeAudit(this.config, req);
    return this.collect(q, q.federate ?? false, res);
  }

  /** A Mermaid `sequenceDiagram` of a trace (or a time range) across every app reachable from here. */
  @Get('sequence')
  @Header('content-type', 'text/plain; charset=utf-8')
  async sequence(@Query() q: AuditQueryDto, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<string> {
    authorizeAudit(this.config, req);
    if (!q.trace && q.since === undefined) throw new KernelError('EINVAL', 'give a trace id (trace=) or a time range (since=, until=)');
    const events = await this.collect(q, q.federate ?? true, res);
    return renderSequence(events, q.trace ? `trace ${q.trace}` : undefined, { labels: q.labels ?? true });
  }

  /** Our rows, plus (federating) the peers' that answered in time; `x-audit-missing` names those that did not. */
  private async collect(q: AuditQueryDto, federated: boolean, res: Response): Promise<JournalEvent[]> {
    const { operation, object, actor, since, until, limit, instance } = q;
    const local = await this.journal.events({ traceId: q.trace, operation, object, actor, since, until, limit, afterSeq: q.afterSeq, instance });
    if (!federated) return local;
    const timeoutMs = Math.min(this.config.auditPeerTimeoutMs, q.timeoutMs ?? Number.POSITIVE_INFINITY);
    const query = { trace: q.trace, operation, object, actor, since, until, limit };
    const r = await federate(local, this.peers.list(), query, q.depth ?? 3, { app: this.config.app, token: this.config.auditToken, timeoutMs });
    if (r.missing.length > 0) res.setHeader('x-audit-missing', r.missing.join(','));
    return r.events;
  }
}
