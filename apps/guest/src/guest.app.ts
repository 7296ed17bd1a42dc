// One running guest OS, whichever door its VMM is reached by (DESIGN §8): the OS (guest-os.ts) over a VmmPort
// (REST, or in-process), its journal, its lifeline to the VMM, and the console calls an operator makes, each
// journaled under the guest's actor. The Nest app and the in-process stack both wrap exactly this.
import type { Journal, OperationMeta } from '@app/shared/journal/journal';
import type { Lifeline } from '@app/shared/lifeline/event-sink';
import { newTraceId, parseTraceparent, runInTrace } from '@app/shared/trace';
import type { VirtualPageRequest } from '@app/shared/contract/vmm';
import type { AccelOptions, SubmitRequest, SubmitResult } from './drivers/accel-driver';
import { GuestOs, type GuestStatus } from './guest-os';
import type { GuestFault, VmmPort } from './vmm.port';
import { inGuestTerms } from './vmm-unreachable';

export interface GuestAppStatus extends GuestStatus {
  vmId: number;
  vmmAttached: boolean;
  bootedAtMs: number | null;
}

export interface GuestAppOptions {
  journal: Journal;
  vmm: VmmPort;
  vmId: number;
  /** Boot under this W3C traceparent (so a VM's creation and its guest's boot are one trace). */
  bootTraceparent?: string | null;
  /** This guest's audit URL, sent with its lifeline. */
  publicUrl?: () => string | null;
  /** The VMM dropped us (or went away): the machine under this OS is gone. */
  onVmmLost?: (reason: string) => void;
  accel?: AccelOptions;
  /**
   * What the vIOMMU driver does with a page request: handle it (the iommu_sva fault path, the default), or only
   * journal it and leave the answer to whoever drives the vIOMMU by hand (tests: DEBUG_PAGE_REQUESTS=ignore).
   */
  pageRequests?: 'handle' | 'ignore';
  onError?: (message: string) => void;
}

export class GuestApp {
  readonly os: GuestOs;
  private lifeline: Lifeline | null = null;
  private vmmAttached = false;
  private bootedAtMs: number | null = null;

  constructor(private readonly opts: GuestAppOptions) {
    this.os = new GuestOs(opts.vmm, opts.accel);
  }

  get journal(): Journal {
    return this.opts.journal;
  }

  status(): GuestAppStatus {
    return { ...this.os.status(), vmId: this.opts.vmId, vmmAttached: this.vmmAttached, bootedAtMs: this.bootedAtMs };
  }

  /** Boot: hold the lifeline, boot the OS on its machine, reset every vCPU's IA32_PASID (valid clear), as firmware leaves it. */
  async boot(): Promise<void> {
    const tp = parseTraceparent(this.opts.bootTraceparent ?? null);
    await runInTrace({ traceId: tp?.traceId ?? newTraceId(), spanId: tp?.parentId ?? null, caller: tp ? 'operator' : null }, () =>
      // A boot is an input (DESIGN §9): whoever started this guest did it from outside the stack.
      this.run({ operation: 'guest.boot', object: `vm:${this.opts.vmId}`, input: { kind: 'boot', app: 'guest', vm: this.opts.vmId, principal: this.actor, ...(this.opts.pageRequests === 'ignore' ? { pageRequests: 'ignore' } : {}) } }, async () => {
        this.lifeline = this.opts.vmm.holdLifeline({
          auditUrl: this.opts.publicUrl?.() ?? null,
          onEnd: (reason) => {
            this.vmmAttached = false;
            this.opts.onVmmLost?.(reason);
          },
          // vIOMMU fault records and page requests the VMM pushes (virtual ids only): the guest journals what it was
          // told, and its drivers learn of a fault (the fault event interrupt).
          onEvent: (e) => {
            if (e.event === 'fault') {
              this.os.deviceFault(e.data as GuestFault);
              this.told('viommu.fault', e.data);
            } else if (e.event === 'page-request') this.onPageRequest(e.data as VirtualPageRequest & { traceparent?: string });
          },
        });
        await this.lifeline.opened;
        this.vmmAttached = true;
        const machine = await this.os.boot();
        for (let vcpu = 0; vcpu < machine.vcpus; vcpu++) await this.opts.vmm.wrmsr(vcpu, 'IA32_PASID', 0);
        this.bootedAtMs = Date.now();
        return { memoryMiB: machine.memoryMiB, vcpus: machine.vcpus, devices: machine.devices.map((d) => d.vrid) };
      }),
    );
  }

  /** Drops the lifeline on purpose (the guest shuts down). */
  shutdown(): void {
    this.lifeline?.close();
    this.lifeline = null;
    this.vmmAttached = false;
  }

  // ---- the console: what an operator asks of the guest ----------------------------------------------

  createProcess(name: string): Promise<{ pid: number }> {
    return this.run({ operation: 'process.create', args: { name }, object: (r) => `gpid:${r.pid}` }, async () => ({ pid: await this.os.createProcess(name) }));
  }

  /** Reserves a new GVA range; its pages get zeroed frames on first touch, or all now with `populate`. */
  mmap(pid: number, length: number, populate = false): Promise<{ gva: number }> {
    return this.run({ operation: 'mm.mmap', args: populate ? { length, populate } : { length }, object: `gpid:${pid}` }, async () => ({ gva: await this.os.mmap(pid, length, populate) }));
  }

  /** Unmaps a whole mapping: PTEs cleared, PASID-based IOTLB invalidation + wait, then the frames are freed. */
  munmap(pid: number, gva: number, length: number): Promise<void> {
    return this.run({ operation: 'mm.munmap', args: { gva, length }, object: `gpid:${pid}` }, () => this.os.munmap(pid, gva, length));
  }

  /** Writes process memory by GVA (EFAULT and nothing written if any byte is unmapped). */
  writeMemory(pid: number, gva: number, data: Buffer): Promise<void> {
    return this.run({ operation: 'mm.write', args: { gva, length: data.length }, object: `gpid:${pid}` }, () => this.os.writeMemory(pid, gva, data));
  }

  readMemory(pid: number, gva: number, length: number): Promise<Buffer> {
    return this.os.readMemory(pid, gva, length);
  }

  bind(pid: number, vrid: number): Promise<{ vpasid: number }> {
    return this.run({ operation: 'sva.bind', args: { pid, vrid }, object: `gpid:${pid}` }, async () => ({ vpasid: await this.os.bind(pid, vrid) }));
  }

  unbind(pid: number, vrid: number): Promise<void> {
    return this.run({ operation: 'sva.unbind', args: { pid, vrid }, object: `gpid:${pid}` }, () => this.os.unbind(pid, vrid));
  }

  /** IA32_PASID = the process's vPASID, ENQCMD (retry on ZF=1), poll the completion record. */
  submit(pid: number, a: { vrid: number; descriptor: SubmitRequest; vcpu?: number }): Promise<SubmitResult> {
    return this.run({ operation: 'accel.submit', args: a, object: `gpid:${pid}` }, () => this.os.submit(pid, a.vrid, a.descriptor, a.vcpu === undefined ? 0 : a.vcpu));
  }

  /**
   * A page request group the vIOMMU reports, in the trace it came with: journaled as told; then, unless left to an
   * operator, resolved by the fault handler (its own journaled row, committed before the answer leaves, so the
   * device's retry can never overtake it) and answered with a page group response.
   */
  private onPageRequest(data: VirtualPageRequest & { traceparent?: string }): void {
    const { traceparent, ...pr } = data;
    const tp = parseTraceparent(traceparent ?? null);
    void runInTrace({ traceId: tp?.traceId ?? newTraceId(), spanId: tp?.parentId ?? null, caller: 'vmm' }, async () => {
      this.told('viommu.page_request', pr);
      if (this.opts.pageRequests === 'ignore') return;
      const object = `vpasid:${this.opts.vmId}/${pr.vpasid}`;
      const { code } = await this.run({ operation: 'sva.page_fault', args: { vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, requests: pr.requests.length }, object }, () =>
        this.os.handlePageRequest(pr),
      ).catch(() => ({ code: 'invalid' as const }));
      await this.opts.vmm.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code });
    }).catch((err: unknown) => this.opts.onError?.(`page request ${pr.grpid} of vPASID ${pr.vpasid}: ${String(err)}`));
  }

  /** Journals what the VMM told the guest (an event, not an operation of the guest's). */
  private told(operation: 'viommu.fault' | 'viommu.page_request', args: unknown): void {
    try {
      const w = this.opts.journal.record({ operation, actor: this.actor, object: `vm:${this.opts.vmId}`, args });
      if (w instanceof Promise) w.catch((err: unknown) => this.opts.onError?.(`journal: ${String(err)}`));
    } catch (err) {
      this.opts.onError?.(`journal: ${String(err)}`);
    }
  }

  private get actor(): string {
    return `vm:${this.opts.vmId}`;
  }

  private run<T>(meta: Omit<OperationMeta<T>, 'actor'>, fn: () => Promise<T>): Promise<T> {
    return this.opts.journal.run({ actor: this.actor, ...meta }, () =>
      fn().catch((err: unknown) => {
        throw inGuestTerms(err);
      }),
    );
  }
}
