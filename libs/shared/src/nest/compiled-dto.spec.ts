import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { EnqcmdDto } from '../../../../apps/host-kernel/src/cpu/cpu.dto';
import { BindPgtblDto, MapDto, UnmapDto } from '../../../../apps/host-kernel/src/ioasid/ioasid.dto';
import { InvalidateDto } from '../../../../apps/vmm/src/viommu/viommu.dto';
import { compiledBodyValidator } from './compiled-dto';
import { DescriptorDto, GuestReadQuery, GuestWriteDto, WrmsrDto } from './shared.dto';

/** What the full pipe (class-transformer, then class-validator with the kernel's options) decides. */
function fullPipe(dto: new () => object, value: unknown): { ok: boolean; instance: object } {
  const instance = plainToInstance(dto, value, { enableImplicitConversion: false }) as object;
  const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  return { ok: errors.length === 0, instance };
}

const memmove = { op: 'memmove', src: 0, dst: 4096, length: 64, completion: 8192 };
const cases: Array<{ dto: new () => object; good: unknown[]; bad: unknown[] }> = [
  {
    dto: DescriptorDto,
    good: [memmove, { op: 'noop', completion: 0 }, { op: 'fill', dst: 0, length: 8, pattern: 2 ** 40, completion: 32, blockOnFault: false }, { ...memmove, blockOnFault: null }],
    bad: [
      { ...memmove, op: 'format' },
      { ...memmove, length: 1.5 },
      { ...memmove, length: '64' },
      { ...memmove, src: -1 },
      { ...memmove, dst: Number.MAX_SAFE_INTEGER + 2 },
      { ...memmove, extra: 1 },
      { op: 'noop' },
      { ...memmove, pasid: 3 },
      { ...memmove, src: null },
      { ...memmove, blockOnFault: 'yes' },
      [memmove],
      'memmove',
      null,
    ],
  },
  {
    dto: EnqcmdDto,
    good: [{ deviceFd: 4, descriptor: memmove }],
    bad: [{ deviceFd: 4 }, { deviceFd: 4, descriptor: [memmove] }, { deviceFd: 4, descriptor: 'x' }, { deviceFd: 4, descriptor: { ...memmove, nope: true } }, { deviceFd: -1, descriptor: memmove }],
  },
  { dto: WrmsrDto, good: [{ msr: 'IA32_PASID', value: 0x80000007 }], bad: [{ msr: 'IA32_EFER', value: 1 }, { msr: 'IA32_PASID', value: 2 ** 32 }] },
  { dto: GuestWriteDto, good: [{ gpa: 0, data: 'AAAA' }, { gpa: 1, data: '', encoding: 'hex' }], bad: [{ gpa: 0, data: 'AA', encoding: null }, { gpa: 0, data: 5 }] },
  {
    dto: BindPgtblDto,
    good: [{ kind: 'iova' }, { kind: 'mm' }, { kind: 'nested', parent: 3, root: 0x1000 }],
    bad: [{ kind: 'nested' }, { kind: 'iova', parent: 0 }, { kind: 'iova', root: null }, { kind: 'x' }],
  },
  { dto: MapDto, good: [{ iova: 0, hva: 4096, length: 4096, read: true, write: false }], bad: [{ iova: 0, hva: 4096, length: 0, read: true, write: false }, { iova: 0, hva: 4096, length: 1, read: 1, write: false }] },
  {
    // The VMM's invalidation queue: an array of descriptors the vIOMMU decodes itself (untyped for the pipe).
    dto: InvalidateDto,
    good: [{ descriptors: [] }, { descriptors: [{ type: 'pasid-cache', vpasid: 3 }, { type: 'wait' }] }, { descriptors: Array.from({ length: 256 }, () => ({ type: 'wait' })) }],
    bad: [{}, { descriptors: {} }, { descriptors: 'wait' }, { descriptors: Array.from({ length: 257 }, () => ({ type: 'wait' })) }, { descriptors: [], extra: 1 }],
  },
  { dto: UnmapDto, good: [{ all: true }, { iova: 0, length: 4096 }], bad: [{ all: false }, {}, { iova: 0 }] },
];

describe('compiled body validators (from the DTOs themselves)', () => {
  it.each(cases.map((c) => [c.dto.name, c] as const))('%s: accepts exactly what the full pipe accepts, building the same instance', (_name, c) => {
    const accept = compiledBodyValidator(c.dto);
    expect(accept).not.toBeNull();
    if (!accept) return;
    for (const value of c.good) {
      const full = fullPipe(c.dto, value);
      expect(full.ok).toBe(true); // the case itself is valid
      const built = accept(value);
      expect(built).toBeInstanceOf(c.dto);
      expect(built).toEqual(full.instance);
    }
    for (const value of c.bad) {
      expect(accept(value)).toBeNull(); // refused here: the full pipe gives its errno and message
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) expect(fullPipe(c.dto, value).ok).toBe(false);
    }
  });

  it('nested DTOs are built as their @Type class', () => {
    const accept = compiledBodyValidator(EnqcmdDto);
    const built = accept?.({ deviceFd: 4, descriptor: memmove }) as unknown as EnqcmdDto;
    expect(built.descriptor).toBeInstanceOf(DescriptorDto);
    expect(built.descriptor).toEqual(fullPipe(DescriptorDto, memmove).instance);
  });

  it('leaves to the full pipe what it does not know: conversions (@Type(() => Number)), primitives, plain objects', () => {
    expect(compiledBodyValidator(GuestReadQuery)).toBeNull();
    expect(compiledBodyValidator(Number)).toBeNull();
    expect(compiledBodyValidator(Object)).toBeNull();
    expect(compiledBodyValidator(undefined)).toBeNull();
  });
});
