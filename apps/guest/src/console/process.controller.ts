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
    return this.guest.app.createProcess(dto.name);
  }

  /** Reserves a new GVA range: its pages get zeroed frames on first touch (a write, or a device's page request), or now with `populate`. */
  @Post(':pid/mmap')
  mmap(@Param('pid', IntParamPipe) pid: number, @Body() dto: MmapDto): Promise<{ gva: number }> {
    return this.guest.app.mmap(pid, dto.length, dto.populate ?? false);
  }

  /**
   * Unmaps a whole mapping: clears the PTEs, then (the SVA mmu_notifier) a PASID-based IOTLB
   * invalidation + wait for every device the process is bound to, and only then frees the frames.
   */
  @Post(':pid/munmap')
  @HttpCode(204)
  munmap(@Param('pid', IntParamPipe) pid: number, @Body() dto: MunmapDto): Promise<void> {
    return this.guest.app.munmap(pid, dto.gva, dto.length);
  }

  /** Writes process memory by GVA (walks the process's page table; EFAULT and nothing written if unmapped). */
  @Put(':pid/memory')
  @HttpCode(204)
  write(@Param('pid', IntParamPipe) pid: number, @Body() dto: WriteDto): Promise<void> {
    return this.guest.app.writeMemory(pid, dto.gva, decodePayload(dto.data));
  }

  @Get(':pid/memory')
  async read(@Param('pid', IntParamPipe) pid: number, @Query() q: ReadQuery): Promise<{ data: string }> {
    return encodePayload(await this.guest.app.readMemory(pid, q.gva, q.length));
  }
}
