// The guest demo `npm start` runs once the stack is up: a guest process binds to the first device
// (dynamic PASID authorization), copies 64 KiB with ENQCMD through KVM's vPASID→pPASID table into a destination
// it never touched (the device asks for every page with one page request group, the guest maps them and answers,
// the device retries), checks the bytes, copies again (the pages are there now: plain translation), unbinds; then
// writes each step's sequence diagram (all three journals) under out/, and the run's recording (out/demo-recording:
// recording.jsonl, the three databases, config.json), which `npm run replay -- out/demo-recording` replays on a
// fresh stack.
'use strict';
const { spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

function traceparent() {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, header: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

async function run({ guestUrl, audit, log, call, root }) {
  const status = await call('GET', `${guestUrl}/v1/status`);
  const vrid = status.machine.devices[0].vrid;
  const len = 64 * 1024;
  const { pid } = await call('POST', `${guestUrl}/v1/processes`, undefined, { name: 'demo' });
  const { gva: src } = await call('POST', `${guestUrl}/v1/processes/${pid}/mmap`, undefined, { length: len });
  const { gva: dst } = await call('POST', `${guestUrl}/v1/processes/${pid}/mmap`, undefined, { length: len });
  const bytes = randomBytes(len);
  await call('PUT', `${guestUrl}/v1/processes/${pid}/memory`, undefined, { gva: src, data: bytes.toString('base64') });

  const bind = traceparent();
  const { vpasid } = await call('POST', `${guestUrl}/v1/sva/bind`, undefined, { pid, vrid }, bind.header);
  log(`guest process ${pid} bound to vrid 0x${vrid.toString(16)} with vPASID ${vpasid}`);
  const copyOnce = async (what) => {
    const t = traceparent();
    const done = await call('POST', `${guestUrl}/v1/processes/${pid}/submit`, undefined, { vrid, descriptor: { op: 'memmove', src, dst, length: len } }, t.header);
    const copied = Buffer.from((await call('GET', `${guestUrl}/v1/processes/${pid}/memory?gva=${dst}&length=${len}`)).data, 'base64');
    const ok = done.result === 'accepted' && done.status === 1 && copied.equals(bytes);
    log(`ENQCMD memmove of ${len} bytes ${what}: ${JSON.stringify(done)}; bytes ${ok ? 'verified' : 'WRONG'}`);
    if (!ok) throw new Error('the demo copy did not produce the right bytes');
    return t;
  };
  const faulting = await copyOnce('into a destination never touched (page requests)');
  const groups = (await call('GET', `${guestUrl}/v1/audit/events?trace=${faulting.traceId}&operation=sva.page_fault`, audit)).length;
  log(`the guest answered ${groups} page request group(s) for it`);
  const submit = await copyOnce('again (the pages are there now)');
  const unbind = traceparent();
  await call('POST', `${guestUrl}/v1/sva/unbind`, undefined, { pid, vrid }, unbind.header);
  log(`unbound vPASID ${vpasid}`);

  const out = join(root, 'out');
  mkdirSync(out, { recursive: true });
  const diagrams = [
    ['dynamic-authorization.mmd', bind.traceId, 'guest SVA bind: the vIOMMU invalidation drives ALLOC, BIND_PGTBL, ALLOW, MAP_PASID'],
    ['page-request.mmd', faulting.traceId, 'page request round trip: device → IOMMU → host fault queue → VMM → guest → response → device retry'],
    ['enqcmd-translation.mmd', submit.traceId, 'ENQCMD: KVM translates the vPASID through the table MAP_PASID programmed'],
    ['unbind-teardown.mmd', unbind.traceId, 'guest SVA unbind: UNMAP_PASID, DISALLOW, DESTROY'],
  ];
  for (const [file, traceId, title] of diagrams) {
    const text = await call('GET', `${guestUrl}/v1/audit/sequence?trace=${traceId}`, audit);
    writeFileSync(join(out, file), `%% ${title}\n${text}`);
    log(`wrote out/${file} (${title})`);
  }
}

/** Exports the run's recording from its (live) data directory, with what a fresh stack needs to replay it. */
async function record({ dataDir, hostUrl, hostAdmin, log, call, root, fresh }) {
  const devices = await call('GET', `${hostUrl}/v1/vfio/devices`, hostAdmin);
  const config = {
    seed: process.env.SEED === undefined ? null : Number(process.env.SEED),
    memoryMiB: Number(process.env.MEMORY_MIB || 4096),
    devices: devices.map((d) => ({ bdf: d.bdf, pasidWidth: d.pasidWidth, wqDepth: d.wqDepth, vendorId: 0x8086, deviceId: 0x0b25 })),
    pasidQuota: Number(process.env.PASID_QUOTA || 64),
    debugStallBefore: null,
  };
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify(config, null, 2));
  const outDir = join(root, 'out', 'demo-recording');
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'tools.js'), 'replay', '--export', dataDir, outDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`recording the demo: ${r.stderr || r.stdout}`);
  log(r.stdout.trim());
  log(`replay it: npm run replay -- out/demo-recording${fresh ? '' : ' (DATA_DIR was reused: it replays from scratch only if it was empty)'}`);
}

module.exports = { run, record };
