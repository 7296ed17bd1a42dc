import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import type { AuditPeers } from '@app/shared/audit/peers';
import { AUDIT_PEERS } from '@app/shared/nest/tokens';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Auth, CallerId } from '@app/shared/nest/auth';
import { openEventStream } from '@app/shared/nest/event-stream';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { EnqcmdDto } from '../kvm/kvm.dto';
import { KernelService } from '../kernel.service';
import { WrmsrDto } from '@app/shared/nest/shared.dto';
import { CreateProcessDto, MmapDto, ReadMemoryQuery, WriteMemoryDto } from './process.dto';

@ApiTags('processes')
@ApiBearerAuth()
@Controller({ version: '1' })
export class ProcessController {
  constructor(
    private readonly ks: KernelService,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
  ) {}

  /** Creates a host process (fork+exec); its token authenticates every later call it makes. */
  @Post('processes')
  @Auth('none')
  createProcess(@Body() dto: CreateProcessDto): Promise<{ pid: number; token: string }> {
    return this.ks.exec(
      {
        operation: 'process.create',
        actor: 'kernel',
        args: { comm: dto.comm },
        object: (r) => `process:${r.pid}`,
        recordResult: (r) => ({ pid: r.pid }),
      },
      (k) => k.createProcess(dto.comm),
      (em, r) => this.ks.createProcessRow(em, { pid: r.pid, comm: this.ks.kernel.process(r.pid).comm, state: 'running', createdMs: Date.now(), exitedMs: null, exitReason: null }),
    );
  }

  /** The process, its state and its open fds. */
  @Get('processes/:pid')
  @Auth('caller-or-admin')
  getProcess(@Param('pid', IntParamPipe) pid: number): ReturnType<KernelService['describeProcess']> {
    return this.ks.describeProcess(pid);
  }

  /**
   * The process's lifeline: a server-sent event stream (faults, page requests, exit). When the
   * holder drops it, the process dies and every fd it had is closed, leaf first.
   */
  @Get('processes/:pid/lifeline')
  lifeline(@Param('pid', IntParamPipe) pid: number, @Req() req: Request, @Res() res: Response): void {
    this.ks.attachLifeline(pid, res);
    openEventStream(req, res, { pid }, () => void this.ks.lifelineDropped(pid, res), this.peers);
  }

  /** Kills the process: every fd closes, leaf first (KVM mappings, device attachments, ioasids). */
  @Delete('processes/:pid')
  @Auth('caller-or-admin')
  @HttpCode(204)
  async kill(@Param('pid', IntParamPipe) pid: number, @CallerId() caller?: number): Promise<void> {
    await this.ks.exec(
      { operation: 'process.exit', actor: caller === undefined ? 'admin' : `pid:${caller}`, object: `process:${pid}`, args: { reason: 'killed' } },
      (k) => k.killProcess(pid, caller === undefined ? 'killed by admin' : 'exit'),
    );
  }

  /** Anonymous read-write mapping; the hva is page aligned. */
  @Post('processes/:pid/mmap')
  mmap(@Param('pid', IntParamPipe) pid: number, @Body() dto: MmapDto): Promise<{ hva: number }> {
    return this.ks.exec(
      { operation: 'mm.mmap', actor: `pid:${pid}`, args: dto, object: (r) => `hva:${r.hva}` },
      (k) => ({ hva: k.mmap(pid, dto.length) }),
    );
  }

  /** Writes the caller's memory; an unmapped byte anywhere in the range is EFAULT and nothing is written. */
  @Put('processes/:pid/memory')
  @HttpCode(204)
  async writeMemory(@Param('pid', IntParamPipe) pid: number, @Body() dto: WriteMemoryDto): Promise<void> {
    const data = decodePayload(dto.data, dto.encoding);
    await this.ks.exec({ operation: 'mm.write', actor: `pid:${pid}`, args: { hva: dto.hva, length: data.length } }, (k) =>
      k.writeMemory(pid, dto.hva, data),
    );
  }

  /** Reads the caller's memory (not journaled: it changes nothing). */
  @Get('processes/:pid/memory')
  readMemory(@Param('pid', IntParamPipe) pid: number, @Query() q: ReadMemoryQuery): { data: string } {
    return encodePayload(this.ks.kernel.readMemory(pid, q.hva, q.length), q.encoding);
  }

  /** WRMSR IA32_PASID for a host process (host SVA: ENQCMD then carries this PASID untranslated). */
  @Post('processes/:pid/wrmsr')
  @HttpCode(204)
  async wrmsr(@Param('pid', IntParamPipe) pid: number, @Body() dto: WrmsrDto): Promise<void> {
    await this.ks.exec({ operation: 'cpu.wrmsr', actor: `pid:${pid}`, args: dto }, (k) => k.wrmsr(pid, dto.msr, dto.value));
  }

  /** ENQCMD from a host process: the PASID is its IA32_PASID, untranslated (host SVA). */
  @Post('processes/:pid/enqcmd')
  enqcmd(@Param('pid', IntParamPipe) pid: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.ks.exec({ operation: 'cpu.enqcmd', actor: `pid:${pid}`, args: dto }, (k) => k.enqcmd(pid, dto.deviceFd, dto.descriptor));
  }

  /** ENQCMDS from a host process: supervisor-only, so at CPL 3 it is #GP and nothing is submitted. */
  @Post('processes/:pid/enqcmds')
  enqcmds(@Param('pid', IntParamPipe) pid: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.ks.exec({ operation: 'cpu.enqcmds', actor: `pid:${pid}`, args: dto }, (k) => k.enqcmds(pid, dto.deviceFd, dto.descriptor));
  }

  /** close(fd): KVM mappings, device attachments or ioasids behind it are released leaf first. */
  @Delete('fds/:fd')
  @HttpCode(204)
  async closeFd(@Param('fd', IntParamPipe) fd: number, @CallerId() pid: number): Promise<void> {
    await this.ks.exec({ operation: 'fd.close', actor: `pid:${pid}`, object: `fd:${pid}/${fd}`, args: { fd } }, (k) => k.closeFd(pid, fd));
  }
}
