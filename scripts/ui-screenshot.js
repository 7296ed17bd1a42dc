#!/usr/bin/env node
// Takes the README's picture of /ui from a running stack (`npm start` first): the guest's page drawing the
// trace of the demo's SVA bind, in Debian's chromium through playwright-core. Usage: node scripts/ui-screenshot.js [out.png]
'use strict';
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { chromium } = require('playwright-core');

async function main() {
  const out = process.argv[2] || join(__dirname, '..', 'docs', 'ui.png');
  const s = JSON.parse(readFileSync(join(process.env.DATA_DIR || join(__dirname, '..', 'data'), 'stack.json'), 'utf8'));
  const auth = { authorization: `Bearer ${s.audit}` };
  const binds = await (await fetch(`${s.guest}/v1/audit/events?operation=sva.bind`, { headers: auth })).json();
  if (!binds.length) throw new Error('the guest journal has no sva.bind yet: let npm start finish its demo');
  const trace = binds[binds.length - 1].traceId;
  const profile = mkdtempSync(join(tmpdir(), 'ioasid-lab-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1700, height: 1000 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    await page.goto(`${s.guest}/ui?trace=${trace}`);
    await page.fill('#token', s.audit);
    await page.click('#token-form button');
    await page.waitForSelector('#diagram svg');
    await page.click(`#trace-list tbody tr:has-text("sva.bind")`);
    await page.waitForSelector('#diagram svg');
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`${out}: /ui of ${s.guest}, trace ${trace}\n`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`ui-screenshot: ${err.message}\n`);
  process.exit(1);
});
