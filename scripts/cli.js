#!/usr/bin/env node
// `npm run cli -- <command>`: the operator's command line over a running stack's REST APIs (commander).
// It finds the stack through data/stack.json, which `npm start` writes (URLs and tokens), or the environment:
// HOST_KERNEL_URL, VMM_URL, GUEST_URL, HOST_ADMIN_TOKEN, VMM_ADMIN_TOKEN, AUDIT_TOKEN. Every command prints a
// table (or lines) for people and JSON with --json; exit codes follow sysexits(3): 0 ok, 64 usage, 65 bad
// input, 66 not found, 69 the stack does not answer, 70 the stack failed, 77 token refused.
'use strict';
const { Command, InvalidArgumentError } = require('commander');
const { EXIT, CliError, stack, get, journalAfter } = require('./cli/stack');
const { table, emit, out, iso, row } = require('./cli/format');

const s = stack();
const APPS = { 'host-kernel': () => s.host, vmm: () => s.vmm, guest: () => s.guest };

const int = (what) => (v) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return Number(v);
};

/** The guest federates its VMM's and the host kernel's rows; without a guest, ask the VMM. */
const federated = (path) => get(`${s.guest}${path}`, s.audit).catch((err) => (err.exitCode === EXIT.UNAVAILABLE ? get(`${s.vmm}${path}`, s.audit) : Promise.reject(err)));

const program = new Command('npm run cli --')
  .description('Look at a running ioasid-lab stack: health, VMs, the PASID pool, faults, journals, sequence diagrams, PASID history.')
  .option('--json', 'print JSON instead of tables (for scripts)')
  .showHelpAfterError()
  .exitOverride();

const opts = () => program.opts();

program
  .command('status')
  .description('the three apps (health), the VMs and the guest')
  .action(async () => {
    const apps = await Promise.all(
      Object.entries(APPS).map(async ([app, url]) => {
        const h = await get(`${url()}/health`).catch((e) => ({ status: `down: ${e.message}` }));
        return { app, url: url(), status: h.status };
      }),
    );
    const vms = await get(`${s.vmm}/v1/vms`, s.vmmAdmin).catch((e) => ({ error: e.message }));
    const guest = await get(`${s.guest}/v1/status`).catch((e) => ({ error: e.message }));
    emit(opts(), { apps, vms, guest }, (d) => [
      table(['app', 'url', 'health'], d.apps.map((a) => [a.app, a.url, a.status])),
      Array.isArray(d.vms) ? vmTable(d.vms) : `vms: ${d.vms.error}`,
      d.guest.error ? `guest: ${d.guest.error}` : `guest of VM ${d.guest.vmId}: booted ${d.guest.booted}, VMM attached ${d.guest.vmmAttached}, ${d.guest.processes.length} processes`,
    ]);
    if (apps.some((a) => a.status !== 'ok')) process.exitCode = EXIT.UNAVAILABLE;
  });

const vmTable = (vms) => table(['id', 'name', 'state', 'memory MiB', 'vCPUs', 'devices', 'guest'], vms.map((v) => [v.id, v.name, v.state, v.memoryMiB, v.vcpus, v.devices.join(' '), v.guestAttached ? 'attached' : '-']));

program
  .command('vms')
  .description('VMs on the VMM')
  .action(async () => emit(opts(), await get(`${s.vmm}/v1/vms`, s.vmmAdmin), vmTable));

program
  .command('pasids')
  .description('the host PASID pool; one PASID (state, owner, holders); or, with --state, the pool and its busiest holders')
  .argument('[pasid]', 'a host PASID', int('pasid'))
  .option('--state', 'the pool and the processes holding the most PASIDs (from the host object graph)')
  .option('--top <n>', 'how many holders --state lists', int('top'), 10)
  .action(async (pasid, o) => {
    if (pasid !== undefined) return emit(opts(), await get(`${s.host}/v1/hw/pasids?pasid=${pasid}`, s.hostAdmin), (p) => table(['pasid', 'state', 'owner', 'holders'], [[p.pasid, p.state, p.owner && JSON.stringify(p.owner), p.holders && JSON.stringify(p.holders)]]));
    if (!o.state) return emit(opts(), await get(`${s.host}/v1/hw/pasids`, s.hostAdmin), (p) => table(['allocated', 'parked', 'free'], [[p.allocated, p.parked, p.free]]));
    const { state } = await get(`${s.host}/v1/audit/state`, s.audit);
    emit(opts(), { pool: state.pool, holders: busiest(state, o.top) }, (d) => [
      table(['allocated', 'parked', 'free'], [[d.pool.allocated, d.pool.parked, d.pool.free]]),
      table(['pid', 'comm', 'ioasids', 'bound', 'parked', 'device routes', 'KVM entries'], d.holders.map((h) => [h.pid, h.comm, h.ioasids, h.bound, h.parked, h.deviceRoutes, h.kvmEntries])),
    ]);
  });

/** The processes owning the most ioasids (each a host PASID), with what holds them. */
function busiest(state, top) {
  const byPid = new Map();
  for (const i of state.ioasids) {
    const h = byPid.get(i.owner.pid) ?? { pid: i.owner.pid, comm: state.processes.find((p) => p.pid === i.owner.pid)?.comm ?? '?', ioasids: 0, bound: 0, parked: 0, deviceRoutes: 0, kvmEntries: 0 };
    h.ioasids++;
    if (i.state === 'bound') h.bound++;
    if (i.state === 'destroyed') h.parked++;
    h.deviceRoutes += i.holders.devices.length;
    h.kvmEntries += i.holders.kvm.length;
    byPid.set(h.pid, h);
  }
  return [...byPid.values()].sort((a, b) => b.ioasids - a.ioasids || a.pid - b.pid).slice(0, top);
}

program
  .command('faults')
  .description('the host IOMMU fault log, oldest first')
  .action(async () =>
    emit(opts(), await get(`${s.host}/v1/hw/iommu/faults`, s.hostAdmin), (fs) => table(['bdf', 'pasid', 'address', 'access', 'reason'], fs.map((f) => [f.bdf, f.pasid ?? 'RID', `0x${f.address.toString(16)}`, f.access, f.reason]))),
  );

program
  .command('page-requests')
  .description('the host page request queue: depth, held, overflows, and the groups waiting for an answer')
  .action(async () =>
    emit(opts(), await get(`${s.host}/v1/hw/iommu/page-requests`, s.hostAdmin), (q) =>
      [
        `depth ${q.depth}, held ${q.held}, groups pending ${q.pending}, overflows ${q.overflows}, timeout ${q.timeoutMs} ms`,
        table(['seq', 'bdf', 'pPASID', 'grpid', 'requests', 'answered by', 'owner'], q.groups.map((g) => [g.seq, g.bdf, g.ppasid, g.grpid, g.requests, g.handler, g.owner ?? '-'])),
      ].join('\n'),
    ),
  );

program
  .command('events')
  .description('journal rows, federated from the guest down')
  .argument('[filters...]', 'key=value: trace=, operation=, object=, actor=, since=, until=, limit=, instance=')
  .action(async (filters) => {
    const q = new URLSearchParams();
    for (const kv of filters) {
      const at = kv.indexOf('=');
      if (at < 1) throw new CliError(`filter "${kv}" is not key=value`, EXIT.USAGE);
      q.set(kv.slice(0, at), kv.slice(at + 1));
    }
    if (!q.has('federate')) q.set('federate', 'true');
    emit(opts(), await federated(`/v1/audit/events?${q}`), (rows) => rows.map(row));
  });

program
  .command('traces')
  .description('recent traces, newest first, across the three apps')
  .option('--limit <n>', 'how many', int('limit'), 20)
  .action(async (o) =>
    emit(opts(), await federated(`/v1/audit/traces?limit=${o.limit}`), (ts) => table(['trace', 'first call', 'apps', 'rows', 'errors', 'last'], ts.map((t) => [t.traceId, t.first, t.apps.join(' '), t.rows, t.errors, iso(t.lastMs)]))),
  );

program
  .command('sequence')
  .description('the Mermaid sequence diagram of a trace across the three apps')
  .argument('<trace-id>', 'a W3C trace id (32 hex digits)')
  .option('--operations', 'name calls by their journal operation (kvm.map_pasid) rather than as the design does (KVM_MAP_PASID)')
  .action(async (traceId, o) => {
    const text = await federated(`/v1/audit/sequence?trace=${encodeURIComponent(traceId)}${o.operations ? '&labels=false' : ''}`);
    emit(opts(), { traceId, mermaid: text }, () => text.trimEnd());
  });

program
  .command('history')
  .description('every host journal row that named ioasid:<pPASID>, oldest first')
  .argument('<pasid>', 'a host PASID', int('pasid'))
  .action(async (pasid) => {
    const rows = await journalAfter(s.host, s.audit, 0, { object: `ioasid:${pasid}` });
    emit(opts(), rows, (rs) => rs.map((r) => `${iso(r.wallMs)} #${String(r.seq).padEnd(5)} ${r.actor.padEnd(8)} ${r.operation.padEnd(22)} ${JSON.stringify(r.args)} ${r.errno ?? ''}`));
  });

program
  .command('access')
  .description('who had access to a host PASID, from when to when (each allocation epoch)')
  .argument('<pasid>', 'a host PASID', int('pasid'))
  .action(async (pasid) =>
    emit(opts(), await get(`${s.host}/v1/audit/pasids/${pasid}`, s.audit), (epochs) =>
      epochs.flatMap((e) => [
        `pPASID ${e.pasid} (${e.pgtbl ?? 'no page table'}) owned by ${e.owner}: allocated ${e.allocatedAt}, destroyed ${e.destroyedAt ?? '-'}, freed ${e.freedAt ?? '-'}`,
        ...e.access.map((a) => `  ${a.holder.padEnd(32)} ${a.by.padEnd(8)} ${a.from} → ${a.to ?? 'now'} (${a.endedBy ?? 'still held'})`),
      ]),
    ),
  );

program
  .command('watch')
  .description('follow the live journals: print each new row as the apps commit it (Ctrl-C stops)')
  .option('--app <name...>', 'which apps to follow (host-kernel, vmm, guest)', Object.keys(APPS))
  .option('--interval <ms>', 'how often to poll', int('interval'), 250)
  .option('--count <n>', 'stop after this many rows', int('count'))
  .option('--from-start', 'print the rows already written first')
  .action(async (o) => {
    for (const a of o.app) if (!APPS[a]) throw new CliError(`unknown app ${a} (host-kernel, vmm, guest)`, EXIT.USAGE);
    const after = new Map();
    for (const a of o.app) {
      const rows = o.fromStart ? [] : await journalAfter(APPS[a](), s.audit, 0);
      after.set(a, rows.length ? rows[rows.length - 1].seq : 0);
    }
    let printed = 0;
    for (;;) {
      for (const a of o.app) {
        for (const r of await journalAfter(APPS[a](), s.audit, after.get(a))) {
          after.set(a, r.seq);
          out(opts().json ? JSON.stringify(r) : row(r));
          if (o.count !== undefined && ++printed >= o.count) return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, o.interval));
    }
  });

program.parseAsync(process.argv).catch((err) => {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(EXIT.OK);
  if (err.code?.startsWith('commander.')) process.exit(EXIT.USAGE);
  process.stderr.write(`cli: ${err.message}\n`);
  process.exit(err instanceof CliError ? err.exitCode : EXIT.SOFTWARE);
});
