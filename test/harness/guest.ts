import { http, AUDIT, HOST_ADMIN } from './stack';

interface Row {
  operation: string;
  args: Record<string, unknown>;
  result: unknown;
  errno: string | null;
  object: string | null;
  seq: number;
}

/** Calls a guest app's REST API and fails loudly on an unexpected status. */
export async function guestCall<T>(url: string, method: string, path: string, body?: unknown, traceparent?: string, want = [200, 201, 204]): Promise<T> {
  const res = await http(method, `${url}${path}`, { body, traceparent });
  if (!want.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
  return res.body as T;
}

/** Host journal rows of one trace, oldest first. */
export async function hostRows(hostUrl: string, traceId: string): Promise<Row[]> {
  const res = await http('GET', `${hostUrl}/v1/audit/events?trace=${traceId}`, { token: AUDIT });
  return res.body as Row[];
}

/** The host PASID the VMM allocated for a guest bind (read from the host journal of that trace). */
export async function ppasidOfTrace(hostUrl: string, traceId: string): Promise<number> {
  const alloc = (await hostRows(hostUrl, traceId)).find((r) => r.operation === 'ioasid.alloc' && r.errno === null);
  if (!alloc) throw new Error(`no ioasid.alloc in trace ${traceId}`);
  return (alloc.result as { ioasid: number }).ioasid;
}

export async function pasidState(hostUrl: string, ppasid: number): Promise<string> {
  const res = await http('GET', `${hostUrl}/v1/hw/pasids?pasid=${ppasid}`, { token: HOST_ADMIN });
  return (res.body as { state: string }).state;
}

export async function pool(hostUrl: string): Promise<{ allocated: number; parked: number; free: number }> {
  return (await http('GET', `${hostUrl}/v1/hw/pasids`, { token: HOST_ADMIN })).body as { allocated: number; parked: number; free: number };
}

/** A guest process with two buffers: src filled with `pattern`, dst zeroed. */
export async function processWithBuffers(url: string, name: string, length: number, pattern: (i: number) => number): Promise<{ pid: number; src: number; dst: number; bytes: Buffer }> {
  const { pid } = await guestCall<{ pid: number }>(url, 'POST', '/v1/processes', { name });
  const { gva: src } = await guestCall<{ gva: number }>(url, 'POST', `/v1/processes/${pid}/mmap`, { length });
  const { gva: dst } = await guestCall<{ gva: number }>(url, 'POST', `/v1/processes/${pid}/mmap`, { length });
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = pattern(i) & 0xff;
  await guestCall(url, 'PUT', `/v1/processes/${pid}/memory`, { gva: src, data: bytes.toString('base64') });
  return { pid, src, dst, bytes };
}

export async function readGuest(url: string, pid: number, gva: number, length: number): Promise<Buffer> {
  const r = await guestCall<{ data: string }>(url, 'GET', `/v1/processes/${pid}/memory?gva=${gva}&length=${length}`);
  return Buffer.from(r.data, 'base64');
}
