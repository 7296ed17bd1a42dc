import { Controller, Get, Inject, Query, Req } from '@nestjs/common';
import type { Request } from 'express';
import type { AuditPeers } from '../audit/peers';
import type { StateView } from '../audit/state-view';
import type { CommonConfig } from '../config';
import { RestClient } from '../http/rest-client';
import type { Journal } from '../journal/journal';
import { mergeTraces, recentTraces, type TraceSummary } from '../journal/journal-traces';
import { authorizeAudit } from './audit.controller';
import { TracesQueryDto } from './audit.dto';
import { Auth } from './auth';
import { APP_CONFIG, AUDIT_PEERS, JOURNAL, STATE_VIEW } from './tokens';

/** The operator's views beside the audit rows (the /ui page and the CLI read them): recent traces, live state. */
@Auth('none')
@Controller({ path: 'audit', version: '1' })
export class OperatorController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: CommonConfig,
    @Inject(JOURNAL) private readonly journal: Journal,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
    @Inject(STATE_VIEW) private readonly stateView: StateView,
  ) {}

  /** Recent traces, newest first (`federate=true`, the default, merges the peers' lists). */
  @Get('traces')
  async traces(@Query() q: TracesQueryDto, @Req() req: Request): Promise<TraceSummary[]> {
    authorizeAudit(this.config, req);
    const limit = q.limit ?? 50;
    const local = await recentTraces(this.journal, limit);
    const depth = q.depth ?? 3;
    if (q.federate === false || depth === 0) return local;
    // As for events (audit/federation.ts): the stack's own peers only, each with a deadline; a peer of a peer gets half.
    const timeoutMs = Math.min(this.config.auditPeerTimeoutMs, q.timeoutMs ?? Number.POSITIVE_INFINITY);
    const remote = await Promise.all(
      this.peers.list().map((url) =>
        new RestClient({ baseUrl: url, app: this.config.app, timeoutMs, token: this.config.auditToken ?? undefined })
          .get<TraceSummary[]>('/v1/audit/traces', { limit, federate: true, depth: depth - 1, timeoutMs: Math.max(1, Math.floor(timeoutMs / 2)) })
          .catch(() => [] as TraceSummary[]),
      ),
    );
    return mergeTraces([local, ...remote], limit);
  }

  /** This app's object graph now (host kernel: processes, fds, ioasids, routes, KVM tables, the PASID pool; VMM: VMs and shadow tables; guest: its status). */
  @Get('state')
  state(@Req() req: Request): { app: string; state: unknown } {
    authorizeAudit(this.config, req);
    return { app: this.config.app, state: this.stateView.read() };
  }
}
