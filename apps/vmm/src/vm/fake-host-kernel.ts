// Test double of the host kernel (HostKernelPort) for the VMM's unit tests: records every call in order,
// keeps just enough state to refuse wrong orders like the real kernel, can fail the n-th call (fail_nth),
// and says what is still held. Resources released only implicitly (by fd close or process death) are
// recorded in `implicitReleases`, so a test can prove an unwind was explicit.
import type { Descriptor, DeviceInfo, EnqcmdResult, PgtblSpec, ProcessCreated } from '@app/shared/contract/host-kernel';
import { Errno, KernelError } from '@app/shared/errno';
import type { HostKernelPort } from '../host-kernel.port';

type FdKind = { kind: 'ioasid' } | { kind: 'device'; bdf: string } | { kind: 'vm' };
interface FakeIoasid {
  fd: number;
  state: 'allocated' | 'bound' | 'destroyed';
  pgtbl?: PgtblSpec;
  mappings: Array<{ iova: number; length: number; hva: number }>;
}

export class FakeHostKernel implements HostKernelPort {
  readonly calls: string[] = [];
  readonly log: Array<{ op: string; args: unknown[] }> = [];
  readonly implicitReleases: string[] = [];
  /** Fail the n-th call (1-based) with `failErrno`. */
  failAt: number | null = null;
  failErrno: Errno = 'ENOMEM';
  /** Fail every call this predicate picks. */
  failWhen: ((op: string, args: unknown[]) => Errno | null) | null = null;

  readonly fds = new Map<number, FdKind>();
  readonly ioasids = new Map<number, FakeIoasid>();
  readonly allows = new Map<string, { deviceFd: number; ioasid: number; mode: string }>();
  readonly pasidMaps = new Map<string, number>();
  readonly pasidTranslation = new Set<number>();
  readonly memslots = new Map<number, Array<{ gpa: number; size: number; hva: number }>>();
  readonly memory = new Map<number, Buffer>();
  readonly vcpus = new Map<number, number>();
  readonly invalidations: Array<{ ioasid: number; range?: { iova: number; length: number } }> = [];
  private alive = new Set<number>();
  private nextPid = 100;
  private nextIoasid = 1;
  private nextHva = 0x7f0000000000;

  constructor(readonly devices: DeviceInfo[] = []) {}

  as(): HostKernelPort {
    return this;
  }

  /** Every resource still held, one line each. */
  held(): string[] {
    const out: string[] = [];
    for (const pid of this.alive) out.push(`process ${pid}`);
    for (const [fd, k] of this.fds) out.push(`fd ${fd} (${k.kind})`);
    for (const [id, a] of this.ioasids) if (a.state !== 'destroyed') out.push(`ioasid ${id} ${a.state}`);
    for (const [id, a] of this.ioasids) for (const m of a.mappings) out.push(`ioasid ${id} map 0x${m.iova.toString(16)}+${m.length}`);
    for (const k of this.allows.keys()) out.push(`allow ${k}`);
    for (const k of this.pasidMaps.keys()) out.push(`kvm pasid ${k}`);
    for (const vm of this.pasidTranslation) out.push(`pasid translation on vm fd ${vm}`);
    return out;
  }

  /** Count of calls that change host state (everything but reads and listings). */
  mutatingCalls(): string[] {
    return this.calls.filter((c) => c !== 'readGuestMemory' && c !== 'listDevices');
  }

  private call(op: string, args: unknown[]): void {
    this.calls.push(op);
    this.log.push({ op, args });
    const errno = this.calls.length === this.failAt ? this.failErrno : this.failWhen?.(op, args);
    if (errno) throw new KernelError(errno, `injected failure of ${op} (call ${this.calls.length})`);
  }

  private lowestFd(): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    return fd;
  }

  private fd(fd: number, kind: FdKind['kind']): FdKind {
    const f = this.fds.get(fd);
    if (!f || f.kind !== kind) throw new KernelError('EBADF', `fd ${fd} is not an open ${kind} fd`);
    return f;
  }

  private ioasid(fd: number, id: number): FakeIoasid {
    this.fd(fd, 'ioasid');
    const a = this.ioasids.get(id);
    if (!a || a.fd !== fd || a.state === 'destroyed') throw new KernelError('ENOENT', `ioasid ${id} not in fd ${fd}`);
    return a;
  }

  async createProcess(comm: string): Promise<ProcessCreated> {
    this.call('createProcess', [comm]);
    const pid = this.nextPid++;
    this.alive.add(pid);
    return { pid, token: `token-${pid}` };
  }

  async killProcess(pid: number): Promise<void> {
    this.call('killProcess', [pid]);
    if (!this.alive.delete(pid)) throw new KernelError('ESRCH', `no process ${pid}`);
    const leftovers = this.held();
    this.implicitReleases.push(...leftovers.map((l) => `kill: ${l}`));
    for (const fd of [...this.fds.keys()]) this.release(fd);
  }

  async mmap(pid: number, length: number): Promise<number> {
    this.call('mmap', [pid, length]);
    const hva = this.nextHva;
    this.nextHva += length;
    this.memory.set(hva, Buffer.alloc(length));
    return hva;
  }

  async closeFd(fd: number): Promise<void> {
    this.call('closeFd', [fd]);
    if (!this.fds.has(fd)) throw new KernelError('EBADF', `fd ${fd} is not open`);
    const before = this.held();
    this.release(fd);
    const after = new Set(this.held());
    this.implicitReleases.push(...before.filter((h) => !after.has(h) && !h.startsWith(`fd ${fd} `)).map((h) => `close ${fd}: ${h}`));
  }

  private release(fd: number): void {
    const f = this.fds.get(fd);
    this.fds.delete(fd);
    if (!f) return;
    if (f.kind === 'device') for (const [k, a] of this.allows) if (a.deviceFd === fd) this.allows.delete(k);
    if (f.kind === 'vm') {
      for (const k of [...this.pasidMaps.keys()]) if (k.startsWith(`${fd}:`)) this.pasidMaps.delete(k);
      this.pasidTranslation.delete(fd);
      this.memslots.delete(fd);
    }
    if (f.kind === 'ioasid') {
      for (const a of this.ioasids.values()) {
        if (a.fd === fd) {
          a.state = 'destroyed';
          a.mappings = [];
        }
      }
    }
  }

  async openIoasid(): Promise<number> {
    this.call('openIoasid', []);
    const fd = this.lowestFd();
    this.fds.set(fd, { kind: 'ioasid' });
    return fd;
  }

  async alloc(fd: number): Promise<number> {
    this.call('alloc', [fd]);
    this.fd(fd, 'ioasid');
    const id = this.nextIoasid++;
    this.ioasids.set(id, { fd, state: 'allocated', mappings: [] });
    return id;
  }

  async bindPgtbl(fd: number, ioasid: number, spec: PgtblSpec): Promise<void> {
    this.call('bindPgtbl', [fd, ioasid, spec]);
    const a = this.ioasid(fd, ioasid);
    if (a.state !== 'allocated') throw new KernelError('EBUSY', `ioasid ${ioasid} already has a page table`);
    if (spec.kind === 'nested') {
      const parent = this.ioasid(fd, spec.parent);
      if (parent.state !== 'bound' || parent.pgtbl?.kind !== 'iova') throw new KernelError('EINVAL', `parent ${spec.parent} is not a bound iova ioasid`);
    }
    a.state = 'bound';
    a.pgtbl = spec;
  }

  async map(fd: number, ioasid: number, a: { iova: number; hva: number; length: number; read: boolean; write: boolean }): Promise<number> {
    this.call('map', [fd, ioasid, a]);
    const io = this.ioasid(fd, ioasid);
    if (io.state !== 'bound' || io.pgtbl?.kind !== 'iova') throw new KernelError('EINVAL', `ioasid ${ioasid} is not a bound iova table`);
    io.mappings.push({ iova: a.iova, length: a.length, hva: a.hva });
    return a.iova;
  }

  async unmap(fd: number, ioasid: number, a: { iova: number; length: number } | { all: true }): Promise<number> {
    this.call('unmap', [fd, ioasid, a]);
    const io = this.ioasid(fd, ioasid);
    const hit = 'all' in a ? io.mappings : io.mappings.filter((m) => m.iova >= a.iova && m.iova + m.length <= a.iova + a.length);
    if (hit.length === 0 && !('all' in a)) throw new KernelError('ENOENT', `nothing mapped in the range`);
    io.mappings = io.mappings.filter((m) => !hit.includes(m));
    return hit.reduce((s, m) => s + m.length, 0);
  }

  async invalidate(fd: number, ioasid: number, range?: { iova: number; length: number }): Promise<void> {
    this.call('invalidate', [fd, ioasid, range]);
    this.ioasid(fd, ioasid);
    this.invalidations.push(range ? { ioasid, range } : { ioasid });
  }

  async destroy(fd: number, ioasid: number): Promise<void> {
    this.call('destroy', [fd, ioasid]);
    const a = this.ioasid(fd, ioasid);
    a.state = 'destroyed';
    a.mappings = [];
  }

  async listDevices(): Promise<DeviceInfo[]> {
    this.call('listDevices', []);
    return this.devices.map((d) => ({ ...d }));
  }

  async openDevice(bdf: string): Promise<number> {
    this.call('openDevice', [bdf]);
    if (!this.devices.some((d) => d.bdf === bdf)) throw new KernelError('ENODEV', `no device ${bdf}`);
    if ([...this.fds.values()].some((f) => f.kind === 'device' && f.bdf === bdf)) throw new KernelError('EBUSY', `${bdf} is open`);
    const fd = this.lowestFd();
    this.fds.set(fd, { kind: 'device', bdf });
    return fd;
  }

  async allowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: 'rid' | 'pasid' }): Promise<void> {
    this.call('allowIoasid', [deviceFd, a]);
    this.fd(deviceFd, 'device');
    if (this.ioasid(a.ioasidFd, a.ioasid).state !== 'bound') throw new KernelError('EINVAL', `ioasid ${a.ioasid} is not bound`);
    const key = `${deviceFd}:${a.ioasid}`;
    if (this.allows.has(key)) throw new KernelError('EBUSY', `ioasid ${a.ioasid} already allowed on fd ${deviceFd}`);
    this.allows.set(key, { deviceFd, ioasid: a.ioasid, mode: a.mode });
  }

  async disallowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number }): Promise<void> {
    this.call('disallowIoasid', [deviceFd, a]);
    this.fd(deviceFd, 'device');
    if (!this.allows.delete(`${deviceFd}:${a.ioasid}`)) throw new KernelError('ENOENT', `ioasid ${a.ioasid} not allowed on fd ${deviceFd}`);
  }

  async createVm(): Promise<number> {
    this.call('createVm', []);
    const fd = this.lowestFd();
    this.fds.set(fd, { kind: 'vm' });
    return fd;
  }

  async addMemslot(vmFd: number, a: { gpa: number; size: number; hva: number }): Promise<void> {
    this.call('addMemslot', [vmFd, a]);
    this.fd(vmFd, 'vm');
    this.memslots.set(vmFd, [...(this.memslots.get(vmFd) ?? []), a]);
  }

  async createVcpu(vmFd: number): Promise<number> {
    this.call('createVcpu', [vmFd]);
    this.fd(vmFd, 'vm');
    const n = this.vcpus.get(vmFd) ?? 0;
    this.vcpus.set(vmFd, n + 1);
    return n;
  }

  /** The bytes behind [gpa, gpa+length) of a VM (test access, no call recorded). */
  guestRam(vmFd: number, gpa: number, length: number): Buffer {
    const slot = (this.memslots.get(vmFd) ?? []).find((s) => gpa >= s.gpa && gpa + length <= s.gpa + s.size);
    if (!slot) throw new KernelError('EFAULT', `gpa 0x${gpa.toString(16)}+${length} is not in a memslot`);
    const base = [...this.memory.keys()].find((h) => slot.hva >= h && slot.hva < h + (this.memory.get(h) as Buffer).length) as number;
    const off = slot.hva - base + (gpa - slot.gpa);
    return (this.memory.get(base) as Buffer).subarray(off, off + length);
  }

  async readGuestMemory(vmFd: number, gpa: number, length: number): Promise<Buffer> {
    this.call('readGuestMemory', [vmFd, gpa, length]);
    return Buffer.from(this.guestRam(vmFd, gpa, length));
  }

  async writeGuestMemory(vmFd: number, gpa: number, data: Buffer): Promise<void> {
    this.call('writeGuestMemory', [vmFd, gpa, data.length]);
    data.copy(this.guestRam(vmFd, gpa, data.length));
  }

  async setPasidTranslation(vmFd: number, enabled: boolean): Promise<void> {
    this.call('setPasidTranslation', [vmFd, enabled]);
    this.fd(vmFd, 'vm');
    if (enabled) this.pasidTranslation.add(vmFd);
    else this.pasidTranslation.delete(vmFd);
  }

  async mapPasid(vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): Promise<void> {
    this.call('mapPasid', [vmFd, a]);
    this.fd(vmFd, 'vm');
    if (!this.pasidTranslation.has(vmFd)) throw new KernelError('EINVAL', 'PASID translation is off');
    if (this.ioasid(a.ioasidFd, a.ioasid).state !== 'bound') throw new KernelError('EINVAL', `ioasid ${a.ioasid} is not bound`);
    if (![...this.allows.values()].some((x) => x.ioasid === a.ioasid)) throw new KernelError('EINVAL', `ioasid ${a.ioasid} is allowed on no device`);
    const key = `${vmFd}:${a.vpasid}`;
    if (this.pasidMaps.has(key)) throw new KernelError('EEXIST', `vPASID ${a.vpasid} is mapped`);
    this.pasidMaps.set(key, a.ioasid);
  }

  async unmapPasid(vmFd: number, vpasid: number): Promise<void> {
    this.call('unmapPasid', [vmFd, vpasid]);
    this.fd(vmFd, 'vm');
    if (!this.pasidMaps.delete(`${vmFd}:${vpasid}`)) throw new KernelError('ENOENT', `vPASID ${vpasid} is not mapped`);
  }

  async vcpuWrmsr(vmFd: number, vcpu: number, value: number): Promise<void> {
    this.call('vcpuWrmsr', [vmFd, vcpu, value]);
  }

  async vcpuEnqcmd(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    this.call('vcpuEnqcmd', [vmFd, vcpu, deviceFd, descriptor]);
    return { result: 'accepted' };
  }

  async vcpuEnqcmds(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): Promise<EnqcmdResult> {
    this.call('vcpuEnqcmds', [vmFd, vcpu, deviceFd, descriptor, pasid, privileged]);
    return { result: 'accepted' };
  }
}
