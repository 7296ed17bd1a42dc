#!/usr/bin/env node
// `npm run cli -- <command>`: a small operator CLI over the running stack's REST APIs.
// It finds the stack through data/stack.json, which `npm start` writes (URLs and tokens), or the
// environment: HOST_KERNEL_URL, VMM_URL, GUEST_URL, HOST_ADMIN_TOKEN, VMM_ADMIN_TOKEN, AUDIT_TOKEN.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const USAGE = `usage: npm run cli -- <command>
  status                       the three apps, their health, the VMs and the guest
  vms                          VMs on the VMM
  pasids [P]                   host PASID pool counts, or one PASID's state, owner and holders
  faults                       the host IOMMU fault log
  page-requests                the host page request queue: depth, held, overflows, groups waiting
  events [key=value ...]       journal rows, federated from the guest down (trace=, operation=, object=, actor=, since=, limit=)
  sequence <trace-id>          the Mermaid sequence diagram of a trace across the three apps
  history <pPASID>             every host journal row that named ioasid:<pPASID>, oldest first
  access <pPASID>              who had access to that host PASID, from when to when (each allocation epoch)`;

function stack() {
  let file = {};
  try {
    file = JSON.parse(readFileSync(join(process.env.DATA_DIR || join(__dirname, '..', 'data'), 'stack.json'), 'utf8'));
  } catch {
    /* not started by npm start: the environment must say */
  }
  const env = process.env;
  return {
    host: env.HOST_KERNEL_URL || file.host || 'http://127.0.0.1:7100',
    vmm: env.VMM_URL || file.vmm || 'http://127.0.0.1:7200',
    guest: env.GUEST_URL || file.guest || 'http://127.0.0.1:7300',
    hostAdmin: env.HOST_ADMIN_TOKEN || file.hostAdmin,
    vmmAdmin: env.VMM_ADMIN_TOKEN || file.vmmAdmin,
    audit: env.AUDIT_TOKEN || file.audit,
  };
}

async function get(url, token) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

const print = (v) => console.log(typeof v === 'string' ? v : JSON.stringify(v, null, 2));

async function main(argv) {
  const s = stack();
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'status': {
      for (const [app, url] of [['host-kernel', s.host], ['vmm', s.vmm], ['guest', s.guest]]) {
        const h = await get(`${url}/health`).catch((e) => ({ status: `down (${e.message.split(':').pop().trim()})` }));
        console.log(`${app.padEnd(12)} ${url.padEnd(24)} ${h.status}`);
      }
      print(await get(`${s.vmm}/v1/vms`, s.vmmAdmin).catch((e) => e.message));
      return print(await get(`${s.guest}/v1/status`).catch((e) => e.message));
    }
    case 'vms':
      return print(await get(`${s.vmm}/v1/vms`, s.vmmAdmin));
    case 'pasids':
      return print(await get(`${s.host}/v1/hw/pasids${rest[0] ? `?pasid=${Number(rest[0])}` : ''}`, s.hostAdmin));
    case 'faults':
      return print(await get(`${s.host}/v1/hw/iommu/faults`, s.hostAdmin));
    case 'page-requests':
      return print(await get(`${s.host}/v1/hw/iommu/page-requests`, s.hostAdmin));
    case 'events': {
      const q = new URLSearchParams(rest.map((kv) => kv.split('=')));
      if (!q.has('federate')) q.set('federate', 'true');
      const rows = await get(`${s.guest}/v1/audit/events?${q}`, s.audit).catch(() => get(`${s.vmm}/v1/audit/events?${q}`, s.audit));
      for (const r of rows)
        console.log(`${new Date(r.wallMs).toISOString()} ${r.app.padEnd(11)} #${String(r.seq).padEnd(5)} ${r.actor.padEnd(8)} ${r.operation.padEnd(22)} ${(r.object ?? '').padEnd(14)} ${r.errno ?? JSON.stringify(r.result ?? null)}`);
      return;
    }
    case 'sequence':
      if (!rest[0]) throw new Error('give a trace id');
      return print(await get(`${s.guest}/v1/audit/sequence?trace=${rest[0]}`, s.audit).catch(() => get(`${s.vmm}/v1/audit/sequence?trace=${rest[0]}`, s.audit)));
    case 'history': {
      if (!rest[0]) throw new Error('give a host PASID');
      const rows = await get(`${s.host}/v1/audit/events?object=ioasid:${Number(rest[0])}&limit=10000`, s.audit);
      for (const r of rows)
        console.log(`${new Date(r.wallMs).toISOString()} #${String(r.seq).padEnd(5)} ${r.actor.padEnd(8)} ${r.operation.padEnd(22)} ${JSON.stringify(r.args)} ${r.errno ?? ''}`);
      return;
    }
    case 'access': {
      if (!rest[0]) throw new Error('give a host PASID');
      for (const e of await get(`${s.host}/v1/audit/pasids/${Number(rest[0])}`, s.audit)) {
        console.log(`pPASID ${e.pasid} (${e.pgtbl ?? 'no page table'}) owned by ${e.owner}: allocated ${e.allocatedAt}, destroyed ${e.destroyedAt ?? '-'}, freed ${e.freedAt ?? '-'}`);
        for (const a of e.access) console.log(`  ${a.holder.padEnd(32)} ${a.by.padEnd(8)} ${a.from} → ${a.to ?? 'now'} (${a.endedBy ?? 'still held'})`);
      }
      return;
    }
    default:
      console.log(USAGE);
      process.exitCode = cmd ? 2 : 0;
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`cli: ${err.message}`);
  process.exit(1);
});
