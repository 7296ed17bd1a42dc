// What the VMM does with the events the host pushes on a VM's lifeline (DESIGN §1): a DMA fault goes to the guest in
// guest terms; a page request says the VM's fault queue has groups, so they are read and each is forwarded to the
// guest's vIOMMU page request queue (DESIGN §10). Each runs in the trace the host event carries, so one page
// request's round trip — device, IOMMU, fault queue, VMM, guest, response, retry — is one trace.
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import type { Journal } from '@app/shared/journal/journal';
import { currentTrace, formatTraceparent, newSpanId, newTraceId, parseTraceparent, runInTrace } from '@app/shared/trace';
import type { Vm } from './vm-builder';

export type GuestPush = (id: number, event: string, data: unknown) => void;

export class HostEvents {
  constructor(
    private readonly journal: Journal,
    private readonly push: GuestPush,
    private readonly onError: (message: string) => void,
  ) {}

  handle(id: number, vm: Vm, event: string, data: unknown): void {
    if (event === 'fault') {
      const fault = vm.viommu.translateHostFault(data as FaultRecord);
      if (fault) this.push(id, 'fault', fault);
    } else if (event === 'page-request') {
      const tp = parseTraceparent((data as { traceparent?: string }).traceparent ?? null);
      void runInTrace({ traceId: tp?.traceId ?? newTraceId(), spanId: tp?.parentId ?? null, caller: 'host-kernel' }, () => this.forward(id, vm)).catch(
        (err: unknown) => this.onError(`page requests of vm ${id}: ${String(err)}`),
      );
    }
  }

  /** Reads the VM's host fault queue and forwards every group to the guest (journaled: what each group became). */
  private async forward(id: number, vm: Vm): Promise<void> {
    await this.journal.run(
      { operation: 'viommu.page_request', actor: 'vmm', object: `vm:${id}`, recordResult: (r) => ({ groups: r.groups }) },
      async () => {
        const pulled = await vm.viommu.pullPageRequests();
        const t = currentTrace();
        const traceparent = t ? formatTraceparent(t.traceId, t.spanId ?? newSpanId()) : undefined;
        for (const pr of pulled.forwarded) this.push(id, 'page-request', { ...pr, traceparent });
        for (const f of pulled.faults) this.push(id, 'fault', f);
        return pulled;
      },
    );
  }
}
