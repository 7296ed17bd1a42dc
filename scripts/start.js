#!/usr/bin/env node
// `npm start`: builds if needed, runs the three apps under one supervisor (logs prefixed by app),
// creates the demo VM, boots its guest, runs the guest demo, writes its recording and diagrams under out/,
// and prints where to look. Each run starts on a fresh data directory (data/run-<time>/, so its recording
// replays from scratch; earlier runs stay beside it) unless DATA_DIR names one to keep using.
// Ctrl-C stops all three cleanly (guest, then VMM, then host kernel).
'use strict';
const { spawn, execSync } = require('node:child_process');
const { existsSync, statSync, readdirSync, mkdirSync, writeFileSync } = require('node:fs');
const { randomBytes } = require('node:crypto');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');
const APPS = ['host-kernel', 'vmm', 'guest'];
const entry = (app) => join(ROOT, `dist/apps/${app}/apps/${app}/src/main.js`);
const COLORS = { 'host-kernel': 36, vmm: 35, guest: 32, demo: 33 };
const children = [];
let stopping = false;

function log(app, line) {
  const tag = process.stdout.isTTY ? `\x1b[${COLORS[app]}m[${app}]\x1b[0m` : `[${app}]`;
  process.stdout.write(`${tag} ${line}\n`);
}

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfNeeded() {
  const src = Math.max(newestSource(join(ROOT, 'apps')), newestSource(join(ROOT, 'libs')));
  if (APPS.every((a) => existsSync(entry(a)) && statSync(entry(a)).mtimeMs > src)) return;
  log('demo', 'building the three apps (npm run build)…');
  execSync('npm run build', { cwd: ROOT, stdio: 'inherit' });
}

function start(app, env) {
  return new Promise((resolve, reject) => {
    // The apps log JSON when not on a terminal; under this supervisor on a terminal, readable lines (colour kept).
    const pretty = process.stdout.isTTY && !process.env.LOG_FORMAT ? { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' } : {};
    const child = spawn(process.execPath, [entry(app)], { env: { ...process.env, ...pretty, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push({ app, child });
    let ready = false;
    const pipe = (stream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop();
        for (const line of lines) {
          log(app, line);
          if (!ready && line.startsWith('READY ')) {
            ready = true;
            resolve(JSON.parse(line.slice(6)).port);
          }
        }
      });
    };
    pipe(child.stdout);
    pipe(child.stderr);
    child.on('exit', (code, signal) => {
      if (!ready) reject(new Error(`${app} exited (${code ?? signal}) before it was ready`));
      else if (!stopping) {
        log(app, `exited (${code ?? signal}); stopping the stack`);
        shutdown(1);
      }
    });
  });
}

// The operator's Lamport clock (DESIGN §9): every call carries it and moves past the answer's, so the recording
// orders the demo's inputs as they were made, whichever app each reached.
// The apps trust an `x-lamport` only with its proof, which the operator can make: it holds the stack's audit token
// (the apps' own code signs it: libs/shared/src/auth/stack-peer.ts, from the build).
let lamport = 0;
let peerKey = null;

async function call(method, url, token, body, traceparent) {
  // (token may be undefined for the guest's own API)
  const headers = { 'content-type': 'application/json', 'x-caller': 'operator', 'x-lamport': String(lamport) };
  if (peerKey) headers['x-lamport-proof'] = peerKey.sign('lamport', headers['x-lamport']);
  if (token) headers.authorization = `Bearer ${token}`;
  if (traceparent) headers.traceparent = traceparent;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  lamport = Math.max(lamport, Number(res.headers.get('x-lamport')) || 0);
  const text = await res.text();
  const parsed = text ? (text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text) : undefined;
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return parsed;
}

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const { app, child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      child.on('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    log(app, 'stopped');
  }
  process.exit(code);
}

async function main() {
  process.on('SIGINT', () => shutdown(0));
  process.on('SIGTERM', () => shutdown(0));
  buildIfNeeded();
  const home = process.env.DATA_DIR || join(ROOT, 'data');
  const dataDir = process.env.DATA_DIR || join(home, `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dataDir, { recursive: true });
  log('demo', `data directory ${dataDir}`);
  const hostAdmin = process.env.HOST_ADMIN_TOKEN || randomBytes(16).toString('hex');
  const vmmAdmin = process.env.VMM_ADMIN_TOKEN || randomBytes(16).toString('hex');
  const audit = process.env.AUDIT_TOKEN || randomBytes(16).toString('hex');
  peerKey = require(join(ROOT, 'dist/apps/host-kernel/libs/shared/src/auth/stack-peer.js')).StackPeerKey.fromAuditToken(audit);
  const hostPort = await start('host-kernel', { PORT: process.env.HOST_KERNEL_PORT || '7100', DATA_DIR: dataDir, ADMIN_TOKEN: hostAdmin, AUDIT_TOKEN: audit });
  const hostUrl = `http://127.0.0.1:${hostPort}`;
  const vmmPort = await start('vmm', { PORT: process.env.VMM_PORT || '7200', DATA_DIR: dataDir, ADMIN_TOKEN: vmmAdmin, AUDIT_TOKEN: audit, HOST_KERNEL_URL: hostUrl });
  const vmmUrl = `http://127.0.0.1:${vmmPort}`;

  // The demo VM starts fresh on every run (journals and other VMs persist).
  const devices = (await call('GET', `${hostUrl}/v1/vfio/devices`, hostAdmin)).map((d) => d.bdf);
  for (const vm of await call('GET', `${vmmUrl}/v1/vms`, vmmAdmin)) {
    if (vm.name === 'demo') await call('DELETE', `${vmmUrl}/v1/vms/${vm.id}`, vmmAdmin);
  }
  const traceId = randomBytes(16).toString('hex');
  const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
  const vm = await call('POST', `${vmmUrl}/v1/vms`, vmmAdmin, { name: 'demo', memoryMiB: 64, vcpus: 2, devices }, traceparent);
  log('demo', `created VM ${vm.id} with ${devices.join(', ')}`);
  const guestPort = await start('guest', {
    PORT: process.env.GUEST_PORT || '7300',
    DATA_DIR: dataDir,
    VMM_URL: vmmUrl,
    VM_ID: String(vm.id),
    VM_TOKEN: vm.token,
    TRACEPARENT: traceparent,
    AUDIT_TOKEN: audit,
    LAMPORT: String(lamport),
  });
  const guestUrl = `http://127.0.0.1:${guestPort}`;
  // Where the CLI (npm run cli) finds this stack.
  writeFileSync(join(home, 'stack.json'), JSON.stringify({ host: hostUrl, vmm: vmmUrl, guest: guestUrl, hostAdmin, vmmAdmin, audit, dataDir }, null, 2));
  log('demo', `guest booted: ${JSON.stringify(await call('GET', `${guestUrl}/v1/status`))}`);

  await require('./demo.js').run({ guestUrl, vmmUrl, hostUrl, hostAdmin, vmmAdmin, audit, log: (l) => log('demo', l), call, root: ROOT });
  await require('./demo.js').record({ dataDir, hostUrl, hostAdmin, log: (l) => log('demo', l), call, root: ROOT, fresh: !process.env.DATA_DIR });

  log('demo', 'Swagger UIs:');
  log('demo', `  host-kernel  ${hostUrl}/docs   (admin token ${hostAdmin})`);
  log('demo', `  vmm          ${vmmUrl}/docs   (admin token ${vmmAdmin})`);
  log('demo', `  guest        ${guestUrl}/docs`);
  log('demo', 'Operator pages (paste the audit token once per app):');
  log('demo', `  host-kernel  ${hostUrl}/ui   (state, PASID history)`);
  log('demo', `  vmm          ${vmmUrl}/ui   (VMs, shadow PASID tables)`);
  log('demo', `  guest        ${guestUrl}/ui?trace=${traceId}   (the boot, drawn)`);
  log('demo', `Prometheus: ${hostUrl}/metrics, ${vmmUrl}/metrics, ${guestUrl}/metrics (bearer: the audit token)`);
  log('demo', `audit token ${audit}; boot trace: ${guestUrl}/v1/audit/sequence?trace=${traceId}`);
  log('demo', 'Explore: npm run cli -- status | traces | events | sequence <trace> | pasids --state | watch | history <pPASID>. Ctrl-C stops all three.');
}

main().catch((err) => {
  log('demo', `failed: ${err.message}`);
  shutdown(1);
});
