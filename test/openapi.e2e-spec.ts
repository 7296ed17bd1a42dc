import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useStack } from './harness/hooks';
import { http } from './harness/stack';

// Normal runs check that each app serves exactly the committed openapi/<app>.json. `npm run openapi` runs this
// file with UPDATE_OPENAPI=1 instead: it rewrites each file from the served document and says which changed.
const UPDATE = process.env.UPDATE_OPENAPI === '1';
const DIR = join(__dirname, '..', 'openapi');
const APPS = ['host-kernel', 'vmm', 'guest'] as const;

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
  const vm = await s.createVm({ name: 'openapi' });
  await s.startGuest(vm);
});

function urlOf(app: (typeof APPS)[number]): string {
  const s = stack();
  return app === 'host-kernel' ? s.host.url : app === 'vmm' ? s.vmmApp.url : s.guests[0].url;
}

async function served(app: (typeof APPS)[number]): Promise<Record<string, unknown>> {
  const res = await http('GET', `${urlOf(app)}/docs-json`);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ openapi: expect.stringMatching(/^3\./), paths: expect.any(Object) });
  return res.body as Record<string, unknown>;
}

const fileOf = (app: string): string => join(DIR, `${app}.json`);
const text = (doc: unknown): string => `${JSON.stringify(doc, null, 2)}\n`;

describe(UPDATE ? 'UPDATE_OPENAPI=1: openapi/<app>.json is rewritten from the served document' : 'the committed OpenAPI documents match the apps', () => {
  it.each(APPS)('%s', async (app) => {
    const live = await served(app);
    if (UPDATE) {
      const before = readFileSync(fileOf(app), 'utf8');
      writeFileSync(fileOf(app), text(live));
      console.log(`openapi/${app}.json ${before === text(live) ? 'unchanged' : 'rewritten: review and commit the diff'}`);
      // The file now holds what a fresh fetch serves: the document is the app's, not one response's accident.
      expect(JSON.parse(readFileSync(fileOf(app), 'utf8'))).toEqual(await served(app));
    } else {
      // Out of date? Run `npm run openapi` and commit the diff.
      expect(live).toEqual(JSON.parse(readFileSync(fileOf(app), 'utf8')));
    }
    // And the Swagger UI that serves it.
    const ui = await fetch(`${urlOf(app)}/docs/`);
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);
    expect(await ui.text()).toContain('swagger-ui');
  });
});
