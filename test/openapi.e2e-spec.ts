import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useStack } from './harness/hooks';
import { http } from './harness/stack';

// `npm run openapi` runs this file with UPDATE_OPENAPI=1 to regenerate openapi/<app>.json.
const UPDATE = process.env.UPDATE_OPENAPI === '1';
const DIR = join(__dirname, '..', 'openapi');

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
  const vm = await s.createVm({ name: 'openapi' });
  await s.startGuest(vm);
});

describe('the committed OpenAPI documents match the apps', () => {
  it.each(['host-kernel', 'vmm', 'guest'] as const)('%s', async (app) => {
    const s = stack();
    const url = app === 'host-kernel' ? s.host.url : app === 'vmm' ? s.vmmApp.url : s.guests[0].url;
    const live = (await http('GET', `${url}/docs-json`)).body as Record<string, unknown>;
    const file = join(DIR, `${app}.json`);
    if (UPDATE) writeFileSync(file, `${JSON.stringify(live, null, 2)}\n`);
    const committed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    // Out of date? Run `npm run openapi` and commit the diff.
    expect(live).toEqual(committed);
    // And the Swagger UI that serves it.
    const ui = await fetch(`${url}/docs/`);
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);
    expect(await ui.text()).toContain('swagger-ui');
  });
});
