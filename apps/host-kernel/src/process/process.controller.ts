import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { AuditPeers } from '@app/shared/audit/peers';
import { openEventStream, sseSink } from '@app/shared/nest/event-stream';
import { AUDIT_PEERS } from '@app/shared/nest/tokens';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { PROCESS_LIFELINES, type ProcessLifelines } from './lifelines';
import { CreateProcessDto, MmapDto, MmapResult, ReadMemoryQuery, WriteMemoryDto } from './process.dto';
import { type ProcessInfo, processOps as ops } from './process.ops';

@ApiTags('processes')
@ApiBearerAuth()
@Controller({ version: '1' })
export class ProcessController {
  constructor(
    private readonly host: Dispatcher,
    @Inject(PROCESS_LIFELINES) private readonly lifelines: ProcessLifelines,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
  ) {}

  /** Creates a host process (fork+exec); its token authenticates every later call it makes. */
  @Post('processes')
  @Authorize(ops.create)
  async createProcess(@Caller() caller: HostCaller, @Body() dto: CreateProcessDto): Promise<{ pid: number; token: string }> {
    const { pid, token } = await this.host.exec(ops.create, caller, { comm: dto.comm });
    return { pid, token };
  }

  /** The process, its state and its open fds. */
  @Get('processes/:pid')
  @Authorize(ops.get)
  getProcess(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number): Promise<ProcessInfo & { exitReason?: string | null }> {
    return this.lifelines.describeProcess(caller, pid);
  }

  /**
   * The process's lifeline: a server-sent event stream (faults, page requests, exit). When the
   * holder drops it, the process dies and every fd it had is closed, leaf first.
   */
  @Get('processes/:pid/lifeline')
  lifeline(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Req() req: Request, @Res() res: Response): void {
    const sink = sseSink(res);
    this.lifelines.attachLifeline(caller, pid, sink);
    openEventStream(req, res, { pid }, () => void this.lifelines.lifelineDropped(pid, sink), this.peers);
  }

  /** Kills the process: every fd closes, leaf first (KVM mappings, device attachments, ioasids). */
  @Delete('processes/:pid')
  @HttpCode(204)
  @Authorize(ops.exit)
  async kill(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number): Promise<void> {
    await this.host.exec(ops.exit, caller, { pid });
  }

  /** Anonymous read-write mapping; the hva is page aligned. `shared`: a memory file backs it, named in the answer. */
  @Post('processes/:pid/mmap')
  @Authorize(ops.mmap)
  mmap(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Body() dto: MmapDto): Promise<MmapResult> {
    return this.host.exec(ops.mmap, caller, dto.shared === undefined ? { pid, length: dto.length } : { pid, length: dto.length, shared: dto.shared });
  }

  /** Writes the caller's memory; an unmapped byte anywhere in the range is EFAULT and nothing is written. */
  @Put('processes/:pid/memory')
  @HttpCode(204)
  @Authorize(ops.write)
  async writeMemory(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Body() dto: WriteMemoryDto): Promise<void> {
    await this.host.exec(ops.write, caller, { pid, hva: dto.hva, data: decodePayload(dto.data, dto.encoding) });
  }

  /** Reads the caller's memory (not journaled: it changes nothing). */
  @Get('processes/:pid/memory')
  @Authorize(ops.read)
  async readMemory(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Query() q: ReadMemoryQuery): Promise<{ data: string }> {
    return encodePayload(await this.host.exec(ops.read, caller, { pid, hva: q.hva, length: q.length }), q.encoding);
  }

  /** close(fd): KVM mappings, device attachments or ioasids behind it are released leaf first. */
  @Delete('fds/:fd')
  @HttpCode(204)
  @Authorize(ops.close)
  async closeFd(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number): Promise<void> {
    await this.host.exec(ops.close, caller, { fd });
  }
}
