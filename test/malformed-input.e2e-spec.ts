import { useStack } from './harness/hooks';
import { AUDIT, HOST_ADMIN, http, VMM_ADMIN } from './harness/stack';

interface OpenApi {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref?: string } }> } }>>;
  components: { schemas: Record<string, { properties?: Record<string, { type?: string }>; required?: string[] }> };
}

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
  const vm = await s.createVm({ name: 'fuzz' });
  await s.startGuest(vm);
  ctx.vm = vm;
});
const ctx: { vm?: { id: number; token: string } } = {};

// The calls of DESIGN §5 that take a body: each app's document must offer them, so the sweep reaches them.
const HOST_BODY_CALLS = [
  'POST /v1/processes',
  'POST /v1/processes/{pid}/mmap',
  'PUT /v1/processes/{pid}/memory',
  'POST /v1/processes/{pid}/wrmsr',
  'POST /v1/processes/{pid}/enqcmd',
  'POST /v1/ioasid/{fd}/ioasids/{ioasid}/pgtbl',
  'POST /v1/ioasid/{fd}/ioasids/{ioasid}/map',
  'POST /v1/ioasid/{fd}/ioasids/{ioasid}/unmap',
  'POST /v1/ioasid/{fd}/ioasids/{ioasid}/invalidate',
  'POST /v1/vfio/{fd}/allow-ioasid',
  'POST /v1/vfio/{fd}/disallow-ioasid',
  'POST /v1/kvm/{fd}/memslots',
  'PUT /v1/kvm/{fd}/memory',
  'POST /v1/kvm/{fd}/pasid-translation',
  'POST /v1/kvm/{fd}/map-pasid',
  'POST /v1/kvm/{fd}/unmap-pasid',
  'POST /v1/kvm/{fd}/vcpus/{n}/wrmsr',
  'POST /v1/kvm/{fd}/vcpus/{n}/enqcmd',
  'POST /v1/hw/devices/{bdf}/dma',
];
const VMM_BODY_CALLS = [
  'POST /v1/vms',
  'PUT /v1/vms/{id}/memory',
  'POST /v1/vms/{id}/vcpus/{n}/wrmsr',
  'POST /v1/vms/{id}/vcpus/{n}/enqcmd',
  'PUT /v1/vms/{id}/viommu/context/{vrid}',
  'POST /v1/vms/{id}/viommu/invalidate',
  'POST /v1/vms/{id}/viommu/page-response',
];
const GUEST_BODY_CALLS = [
  'POST /v1/processes',
  'POST /v1/processes/{pid}/mmap',
  'PUT /v1/processes/{pid}/memory',
  'POST /v1/sva/bind',
  'POST /v1/sva/unbind',
  'POST /v1/processes/{pid}/submit',
];

/** Bodies no endpoint may take: wrong JSON, wrong shapes, wrong types, huge numbers, unknown fields. */
function badBodies(schema: { properties?: Record<string, { type?: string }> } | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [
    ['invalid JSON', '{"a":'],
    ['an array', '[1,2]'],
    ['a string', '"hello"'],
    ['null', 'null'],
    ['unknown field only', '{"definitelyNotAField":1}'],
    // 3,000 deep (18 KB) overflowed class-transformer's recursion: a 500 on every body endpoint.
    ['nested 3000 deep', `{"x":${'['.repeat(3000)}${']'.repeat(3000)}}`],
    ['__proto__ only', '{"__proto__":{"x":1}}'],
    ['constructor only', '{"constructor":1}'],
  ];
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    const wrong = prop.type === 'string' ? 12345 : prop.type === 'array' ? 'not-an-array' : 'not-a-number';
    out.push([`${name} of the wrong type`, JSON.stringify({ [name]: wrong })]);
    if (prop.type === 'number' || prop.type === 'integer' || prop.type === undefined) {
      out.push([`${name} huge`, JSON.stringify({ [name]: 1e300 })]);
      out.push([`${name} 2^64`, `{"${name}": 18446744073709551616}`]);
      out.push([`${name} negative`, JSON.stringify({ [name]: -1 })]);
    }
    out.push([`${name} plus an unknown field`, JSON.stringify({ [name]: wrong, extra: true })]);
  }
  return out;
}

/** Sends every bad body to every operation of the app's document that takes a body; returns those operations. */
async function sweep(base: string, tokens: string[], params: Record<string, string>): Promise<string[]> {
  const doc = (await http('GET', `${base}/docs-json`)).body as OpenApi;
  const operations: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!op.requestBody) continue;
      const ref = op.requestBody.content['application/json']?.schema.$ref;
      const schema = ref ? doc.components.schemas[ref.split('/').pop() as string] : undefined;
      const url = base + path.replace(/\{(\w+)\}/g, (_m, p: string) => params[p] ?? '3');
      operations.push(`${method.toUpperCase()} ${path}`);
      for (const [what, raw] of [['empty body', ''] as [string, string], ...badBodies(schema)]) {
        // Try each token until one gets past authentication: the point is what validation answers.
        let res = await http(method.toUpperCase(), url, { rawBody: raw, token: tokens[0] });
        for (const t of tokens.slice(1)) if (res.status === 401 || res.status === 403) res = await http(method.toUpperCase(), url, { rawBody: raw, token: t });
        const where = `${method.toUpperCase()} ${path} with ${what}: ${res.status} ${res.text}`;
        expect([where, res.status >= 400 && res.status < 500]).toEqual([where, true]);
        expect([where, res.body]).toEqual([where, expect.objectContaining({ errno: expect.stringMatching(/^E[A-Z]+$/), code: expect.any(Number) })]);
      }
    }
  }
  return operations;
}

describe('malformed bodies on every endpoint: a 4xx with an errno body, never a 500', () => {
  it('host kernel', async () => {
    const s = stack();
    const p = await s.hostProcess('fuzzer');
    expect(await sweep(s.host.url, [p.token, HOST_ADMIN], { pid: String(p.pid), bdf: '0000:6a:01.0' })).toEqual(expect.arrayContaining(HOST_BODY_CALLS));
  });

  it('vmm', async () => {
    const s = stack();
    const vm = ctx.vm!;
    expect(await sweep(s.vmmApp.url, [vm.token, VMM_ADMIN], { id: String(vm.id), vrid: '8' })).toEqual(expect.arrayContaining(VMM_BODY_CALLS));
  });

  it('guest', async () => {
    const s = stack();
    expect(await sweep(s.guests[0].url, [], { pid: '1' })).toEqual(expect.arrayContaining(GUEST_BODY_CALLS));
  });

  it('a valid body plus a field named __proto__ or constructor is refused like any unknown field, and changes nothing', async () => {
    const s = stack();
    const vm = ctx.vm!;
    const guest = s.guests[0].url;
    const processes = async (): Promise<unknown> => (await http('GET', `${guest}/v1/status`)).body;
    const vms = async (): Promise<unknown> => (await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN })).body;
    const before = { vms: await vms(), guest: await processes() };
    const p = await s.hostProcess('probe');
    for (const field of ['"__proto__":{"comm":"polluted"}', '"constructor":{"name":"x"}', '"__proto__":7']) {
      const host = await http('POST', `${s.host.url}/v1/processes`, { rawBody: `{"comm":"evil",${field}}` });
      expect([field, host.status, host.body]).toEqual([field, 400, expect.objectContaining({ errno: 'EINVAL' })]);
      const vmm = await http('POST', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN, rawBody: `{"name":"evil","memoryMiB":16,"vcpus":1,"devices":[],${field}}` });
      expect([field, vmm.status, vmm.body]).toEqual([field, 400, expect.objectContaining({ errno: 'EINVAL' })]);
      const g = await http('POST', `${guest}/v1/processes`, { rawBody: `{"name":"evil",${field}}` });
      expect([field, g.status, g.body]).toEqual([field, 400, expect.objectContaining({ errno: 'EINVAL' })]);
      const mmap = await http('POST', `${s.host.url}/v1/processes/${p.pid}/mmap`, { token: p.token, rawBody: `{"length":4096,${field}}` });
      expect([field, mmap.status]).toEqual([field, 400]);
    }
    expect({ vms: await vms(), guest: await processes() }).toEqual(before);
    // No process was created: the next pid follows the probe's.
    expect((await s.hostProcess('after')).pid).toBe(p.pid + 1);
    expect(vm.id).toBeGreaterThan(0);
  });

  it('null is a value, not an absent field: every optional field refuses it with EINVAL and nothing runs', async () => {
    const s = stack();
    const p = await s.hostProcess('nulls');
    const fd = await p.k.openIoasid();
    const gpa = await p.k.alloc(fd);
    await p.k.bindPgtbl(fd, gpa, { kind: 'iova' });
    const nested = await p.k.alloc(fd);
    const hva = await p.k.mmap(p.pid, 4096);
    const journal = async (): Promise<number> => ((await http('GET', `${s.host.url}/v1/audit/events?limit=10000`, { token: AUDIT })).body as unknown[]).length;
    const rows = await journal();
    const calls: Array<[string, string, unknown]> = [
      // Absent root = pass-through to the parent's space; null used to mean the same.
      ['POST', `/v1/ioasid/${fd}/ioasids/${nested}/pgtbl`, { kind: 'nested', parent: gpa, root: null }],
      ['PUT', `/v1/processes/${p.pid}/memory`, { hva, data: 'AAAA', encoding: null }],
      ['POST', `/v1/ioasid/${fd}/ioasids/${gpa}/unmap`, { all: null }],
      ['POST', `/v1/processes/${p.pid}/enqcmd`, { deviceFd: 3, descriptor: { op: 'noop', completion: hva, src: null } }],
    ];
    for (const [method, path, body] of calls) {
      const res = await http(method, `${s.host.url}${path}`, { token: p.token, body });
      expect([path, res.status, res.body]).toEqual([path, 400, expect.objectContaining({ errno: 'EINVAL' })]);
    }
    // Absent pasid = a RID request; null used to be one too.
    const dma = await http('POST', `${s.host.url}/v1/hw/devices/0000:6a:01.0/dma`, { token: HOST_ADMIN, body: { pasid: null, address: 0, length: 4, write: false } });
    expect([dma.status, dma.body]).toEqual([400, expect.objectContaining({ errno: 'EINVAL' })]);
    expect((await p.k.info(fd, nested)).state).toBe('allocated');
    expect(await journal()).toBe(rows);
    // The guest console: absent vcpu = vCPU 0.
    const submit = await http('POST', `${s.guests[0].url}/v1/processes/1/submit`, { body: { vrid: 8, vcpu: null, descriptor: { op: 'noop' } } });
    expect([submit.status, submit.body]).toEqual([400, expect.objectContaining({ errno: 'EINVAL' })]);
    // Absent populate = map lazily; null used to be the same (found by test/bad-input.e2e-spec.ts).
    const mmap = await http('POST', `${s.guests[0].url}/v1/processes/1/mmap`, { body: { length: 4096, populate: null } });
    expect([mmap.status, mmap.body]).toEqual([400, expect.objectContaining({ errno: 'EINVAL' })]);
  });
});
