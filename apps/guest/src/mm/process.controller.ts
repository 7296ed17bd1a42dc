import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import { GuestService } from '../guest.service';
import { CreateProcessDto, MmapDto, MunmapDto, ReadQuery, WriteDto } from './process.dto';

/** Guest processes: each has its own x86-64 4-level page table in guest memory. */
@ApiTags('processes')
@Controller({ path: 'processes', version: '1' })
export class ProcessController {
  constructor(private readonly guest: GuestService) {}

  @Post()
  create(@Body() dto: CreateProcessDto): Promise<{ pid: number }> {
    return this.guest.run({ operation: 'process.create', args: dto, object: (r) => `gpid:${r.pid}` }, async () => ({
      pid: await this.guest.os.createProcess(dto.name),
    }));
  }

  /** Maps fresh zeroed guest frames at a new GVA. */
  @Post(':pid/mmap')
  mmap(@Param('pid', IntParamPipe) pid: number, @Body() dto: MmapDto): Promise<{ gva: number }> {
    return this.guest.run({ operation: 'mm.mmap', args: dto, object: `gpid:${pid}` }, async () => ({ gva: await this.guest.os.mmap(pid, dto.length) }));
  }

  /**
   * Unmaps a whole mapping: clears the PTEs, then (the SVA mmu_notifier) a PASID-based IOTLB
   * invalidation + wait for every device the process is bound to, and only then frees the frames.
   */
  @Post(':pid/munmap')
  @HttpCode(204)
  async munmap(@Param('pid', IntParamPipe) pid: number, @Body() dto: MunmapDto): Promise<void> {
    await this.guest.run({ operation: 'mm.munmap', args: dto, object: `gpid:${pid}` }, () => this.guest.os.munmap(pid, dto.gva, dto.length));
  }

  /** Writes process memory by GVA (walks the process's page table; EFAULT and nothing written if unmapped). */
  @Put(':pid/memory')
  @HttpCode(204)
  async write(@Param('pid', IntParamPipe) pid: number, @Body() dto: WriteDto): Promise<void> {
    const data = decodePayload(dto.data);
    await this.guest.run({ operation: 'mm.write', args: { gva: dto.gva, length: data.length }, object: `gpid:${pid}` }, () =>
      this.guest.os.writeMemory(pid, dto.gva, data),
    );
  }

  @Get(':pid/memory')
  async read(@Param('pid', IntParamPipe) pid: number, @Query() q: ReadQuery): Promise<{ data: string }> {
    return encodePayload(await this.guest.os.readMemory(pid, q.gva, q.length));
  }
}
