import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { Auth } from '@app/shared/nest/auth';
import { authorizeAudit } from '@app/shared/nest/audit.controller';
import { APP_CONFIG, JOURNAL } from '@app/shared/nest/tokens';
import { IntParamPipe } from '@app/shared/nest/validation';
import type { HostKernelConfig } from '../config';
import { pasidAccess, type PasidEpoch } from './pasid-access';

const MAX_ROWS = 10_000;

/** Audit (operator plane): who had access to a host PASID, from when to when. */
@ApiTags('audit')
@Auth('none')
@Controller({ path: 'audit', version: '1' })
export class PasidAccessController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: HostKernelConfig,
    @Inject(JOURNAL) private readonly journal: Journal,
  ) {}

  /**
   * Every allocation epoch of host PASID P (ALLOC … freed) with its holders: device routes
   * (ALLOW … DISALLOW) and KVM vPASID entries (MAP_PASID … UNMAP_PASID); DESTROY ends all access.
   */
  @Get('pasids/:pasid')
  async access(@Param('pasid', IntParamPipe) pasid: number, @Req() req: Request): Promise<PasidEpoch[]> {
    authorizeAudit(this.config, req);
    const rows = await this.journal.events({ object: `ioasid:${pasid}`, limit: MAX_ROWS });
    const actors = [...new Set(rows.map((r) => r.actor).filter((a) => a.startsWith('pid:')))];
    const opened: JournalEvent[] = [];
    const closes: JournalEvent[] = [];
    for (const actor of actors) {
      opened.push(...(await this.journal.events({ actor, operation: 'vfio.open', limit: MAX_ROWS })));
      closes.push(...(await this.journal.events({ actor, operation: 'fd.close', limit: MAX_ROWS })));
    }
    // An fd number is reused after close: the device behind (actor, fd) is the latest open before the row.
    const deviceOf = (actor: string, fd: number, beforeSeq: number): string | null => {
      const hit = opened
        .filter((r) => r.actor === actor && r.errno === null && (r.result as { fd?: number } | null)?.fd === fd && r.seq < beforeSeq)
        .at(-1);
      return hit?.object?.replace(/^device:/, '') ?? null;
    };
    return pasidAccess(pasid, [...rows, ...closes], deviceOf);
  }
}
