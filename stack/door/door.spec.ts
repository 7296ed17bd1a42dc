// The in-process door mirrors the REST routes: every route of each app's committed OpenAPI document (but the
// lifelines, health, metrics and audit, which are no operator's input) has its row, with the controller's status; a
// request through the door answers as REST does and is marked as an input like the REST middleware marks it. Each
// route checks its body and query against the DTOs its controller's document names (scenarios/malformed-requests
// holds the answers on both transports).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getMetadataStorage } from 'class-validator';
import { InProcessStack } from '../in-process-stack';
import { ROUTES } from './door';

const NOT_INPUTS = /\/lifeline$|^\/health$|^\/metrics$|^\/v1\/audit\//;

describe('the operator’s door into the in-process stack', () => {
  it.each(Object.keys(ROUTES) as Array<keyof typeof ROUTES>)('has a route for every REST route of %s (openapi/)', (app) => {
    const doc = JSON.parse(readFileSync(join(__dirname, '..', '..', 'openapi', `${app}.json`), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    const rest = Object.entries(doc.paths)
      .filter(([p]) => !NOT_INPUTS.test(p))
      .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
    const door = ROUTES[app].map((r) => `${r.method} ${r.path}`);
    expect(door.sort()).toEqual(rest.sort());
  });

  it.each(Object.keys(ROUTES) as Array<keyof typeof ROUTES>)('checks the body and query DTOs the %s document names', (app) => {
    const doc = JSON.parse(readFileSync(join(__dirname, '..', '..', 'openapi', `${app}.json`), 'utf8')) as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref?: string } }> }; parameters?: Array<{ in: string; name: string }> }>>;
    };
    const dtoProperties = (dto: Function): string[] => [...new Set(getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false).map((m) => m.propertyName))].sort();
    for (const r of ROUTES[app]) {
      const op = doc.paths[r.path.replace(/:(\w+)/g, '{$1}')][r.method.toLowerCase()];
      const ref = op.requestBody?.content['application/json']?.schema.$ref?.split('/').pop();
      const query = (op.parameters ?? []).filter((x) => x.in === 'query').map((x) => x.name).sort();
      expect([`${r.method} ${r.path}`, r.dto.body?.name]).toEqual([`${r.method} ${r.path}`, ref]);
      expect([`${r.method} ${r.path}`, r.dto.query ? dtoProperties(r.dto.query) : []]).toEqual([`${r.method} ${r.path}`, query]);
    }
  });

  it('answers as REST does, and marks the call an input with its principal, never its token', async () => {
    const stack = await InProcessStack.create();
    try {
      const created = await stack.request({ app: 'host-kernel', method: 'POST', path: '/v1/processes', body: { comm: 'door' } });
      expect(created).toEqual({ status: 201, body: { pid: expect.any(Number), token: expect.any(String) } });
      const { pid, token } = created.body as { pid: number; token: string };
      expect(await stack.request({ app: 'host-kernel', method: 'POST', path: '/v1/ioasid', token })).toEqual({ status: 201, body: { fd: 3 } });
      expect(await stack.request({ app: 'host-kernel', method: 'DELETE', path: `/v1/fds/99`, token })).toMatchObject({ status: 400, body: { errno: 'EBADF' } });
      expect(await stack.request({ app: 'host-kernel', method: 'POST', path: '/v1/ioasid', token: 'not-a-token' })).toMatchObject({ status: 401, body: { errno: 'EACCES' } });
      const rows = (await stack.journals()).host.filter((r) => r.input);
      expect(rows.map((r) => [r.operation, r.errno, r.request])).toEqual([
        ['process.create', null, { kind: 'http', app: 'host-kernel', method: 'POST', path: '/v1/processes', body: { comm: 'door' }, principal: 'none' }],
        ['ioasid.open', null, { kind: 'http', app: 'host-kernel', method: 'POST', path: '/v1/ioasid', body: null, principal: `pid:${pid}` }],
        ['fd.close', 'EBADF', { kind: 'http', app: 'host-kernel', method: 'DELETE', path: '/v1/fds/99', body: null, principal: `pid:${pid}` }],
      ]);
      expect(JSON.stringify(rows)).not.toContain(token);
    } finally {
      await stack.close();
    }
  });
});
