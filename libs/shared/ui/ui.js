// The operator's page of one app (served at /ui by the app itself; Mermaid from node_modules, no network).
// Everything it shows comes from the audit plane, with the audit token the operator pastes (kept for this tab
// only, in sessionStorage): /v1/audit/traces, /v1/audit/sequence, /v1/audit/state, /v1/audit/pasids/:pasid.
'use strict';
(() => {
  const TOKEN_KEY = 'ioasid-lab.audit-token';
  const $ = (sel) => document.querySelector(sel);
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let rendered = 0;
  const params = new URLSearchParams(location.search);

  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', maxTextSize: 1_000_000, sequence: { useMaxWidth: true } });

  const status = (text) => ($('#status').textContent = text || '');

  async function api(path, as = 'json') {
    const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const text = await res.text();
    if (res.status === 401) {
      $('#token-form').hidden = false;
      throw new Error('the audit plane needs the audit token: paste it above');
    }
    if (!res.ok) {
      let message = text;
      try {
        const p = JSON.parse(text);
        message = `${p.errno}: ${p.message}`;
      } catch {
        /* not a problem body */
      }
      throw new Error(`${path}: ${message}`);
    }
    return as === 'json' ? JSON.parse(text) : text;
  }

  /** A table from headers and rows of cell values (text only: nothing from the journal becomes markup). */
  function table(headers, rows, onClick) {
    const t = document.createElement('table');
    const head = t.createTHead().insertRow();
    for (const h of headers) head.appendChild(Object.assign(document.createElement('th'), { textContent: h }));
    const body = t.createTBody();
    rows.forEach((cells, i) => {
      const tr = body.insertRow();
      for (const c of cells) tr.insertCell().textContent = c === null || c === undefined ? '-' : String(c);
      if (onClick) tr.addEventListener('click', () => onClick(i, tr));
    });
    return t;
  }

  function section(parent, title, node) {
    parent.appendChild(Object.assign(document.createElement('h2'), { textContent: title }));
    parent.appendChild(node);
  }

  const hex = (n) => (typeof n === 'number' ? `0x${n.toString(16)}` : n);
  const time = (ms) => new Date(ms).toISOString().slice(11, 23);

  // ---- tabs -------------------------------------------------------------------------------------------

  function show(tab) {
    for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.tab === tab);
    for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== tab;
    status('');
    if (tab === 'traces') loadTraces().catch((e) => status(e.message));
    if (tab === 'state') loadState().catch((e) => status(e.message));
  }

  // ---- traces -----------------------------------------------------------------------------------------

  async function loadTraces() {
    const traces = await api('/v1/audit/traces?limit=100');
    const old = $('#trace-list');
    const fresh = table(
      ['last', 'first call', 'apps', 'rows', 'errors'],
      traces.map((t) => [time(t.lastMs), t.first, t.apps.join(' '), t.rows, t.errors]),
      (i, tr) => {
        for (const r of fresh.querySelectorAll('tr.selected')) r.classList.remove('selected');
        tr.classList.add('selected');
        openTrace(traces[i].traceId).catch((e) => status(e.message));
      },
    );
    fresh.id = 'trace-list';
    old.replaceWith(fresh);
  }

  async function openTrace(traceId) {
    const text = await api(`/v1/audit/sequence?trace=${encodeURIComponent(traceId)}&labels=true`, 'text');
    const { svg } = await mermaid.render(`sequence-${++rendered}`, text);
    $('#diagram').innerHTML = svg;
    $('#trace-id').textContent = traceId;
    const link = (a, body, type, name) => {
      if (a.href) URL.revokeObjectURL(a.href);
      a.href = URL.createObjectURL(new Blob([body], { type }));
      a.download = name;
    };
    link($('#download-svg'), svg, 'image/svg+xml', `trace-${traceId}.svg`);
    link($('#download-mmd'), text, 'text/plain', `trace-${traceId}.mmd`);
    $('#trace-tools').hidden = false;
    history.replaceState(null, '', `/ui?trace=${traceId}`);
    status('');
  }

  // ---- state ------------------------------------------------------------------------------------------

  async function loadState() {
    const { app, state } = await api('/v1/audit/state');
    $('#app').textContent = app;
    const view = $('#state-view');
    view.replaceChildren();
    if (app === 'host-kernel') hostState(view, state);
    else if (app === 'vmm') vmmState(view, state);
    else guestState(view, state);
  }

  function hostState(view, s) {
    section(view, 'PASID pool', table(['allocated', 'parked', 'free'], [[s.pool.allocated, s.pool.parked, s.pool.free]]));
    section(view, 'Processes and fds', table(['pid', 'comm', 'state', 'fds', 'IA32_PASID', 'resident pages'], s.processes.map((p) => [p.pid, p.comm, p.state, p.fds.map((f) => `${f.fd}:${f.kind}`).join(' '), hex(p.ia32Pasid), p.residentPages])));
    section(
      view,
      'ioasids',
      table(
        ['ioasid (pPASID)', 'state', 'owner', 'refs', 'devices', 'KVM', 'children', 'page table'],
        s.ioasids.map((i) => [i.id, i.state, `pid ${i.owner.pid} fd ${i.owner.fd}`, i.refs, i.holders.devices.join(' '), i.holders.kvm.map((k) => `vm fd ${k.vmFd} vPASID ${k.vpasid}`).join(' '), i.holders.children.join(' '), i.pgtbl ? `${i.pgtbl.kind}#${i.pgtbl.id}${i.pgtbl.destroyed ? ' (destroyed)' : ''}` : null]),
      ),
    );
    section(view, 'Device routes', table(['bdf', 'PASID', 'ioasid', 'page table', 'blocked'], s.routes.map((r) => [r.bdf, r.ppasid === null ? 'RID' : r.ppasid, r.ioasid, r.pgtblId, r.blocked])));
    section(view, 'KVM vPASID → pPASID tables', table(['VM (pid, fd)', 'vCPUs', 'translation', 'vPASID', 'pPASID', 'translates'], s.vms.flatMap((v) => (v.pasids.length ? v.pasids : [null]).map((p) => [`pid ${v.pid} fd ${v.fd}`, v.vcpus, v.translation, p && p.vpasid, p && p.ppasid, p && p.translates]))));
    section(view, 'Devices', table(['bdf', 'opened by'], s.devices.map((d) => [d.bdf, d.openedBy ? `pid ${d.openedBy.pid} fd ${d.openedBy.fd}` : null])));
  }

  function vmmState(view, s) {
    section(view, 'VMs', table(['id', 'name', 'state', 'host pid', 'devices', 'guest attached'], s.vms.map((v) => [v.id, v.name, v.state, v.host && v.host.pid, v.devices.join(' '), v.guestAttached])));
    for (const v of s.vms) {
      section(view, `Shadow PASID table of VM ${v.id} (${v.name})`, table(['vPASID', 'pPASID (host ioasid)', 'vrids', 'stale'], v.shadow.map((b) => [b.vpasid, b.ppasid, b.vrids.map(hex).join(' '), b.stale])));
    }
  }

  function guestState(view, s) {
    section(view, 'Guest', table(['VM', 'booted', 'VMM attached', 'frames free / total'], [[s.vmId, s.booted, s.vmmAttached, `${s.frames.free} / ${s.frames.total}`]]));
    section(view, 'Processes', table(['pid', 'name', 'CR3', 'mappings', 'vPASID', 'bound vrids'], s.processes.map((p) => [p.pid, p.name, hex(p.cr3), p.mappings, p.vpasid, p.vrids.map(hex).join(' ')])));
  }

  // ---- PASID history ----------------------------------------------------------------------------------

  async function loadPasid(pasid) {
    const epochs = await api(`/v1/audit/pasids/${pasid}`);
    const out = $('#timeline');
    out.replaceChildren();
    if (epochs.length === 0) out.textContent = `host PASID ${pasid} was never allocated`;
    for (const e of epochs) out.appendChild(epochView(e));
    history.replaceState(null, '', `/ui?pasid=${pasid}`);
    status('');
  }

  function epochView(e) {
    const t0 = Date.parse(e.allocatedAt);
    const t1 = Math.max(t0 + 1, Date.parse(e.freedAt || e.destroyedAt || '') || Date.now(), ...e.access.map((a) => (a.to ? Date.parse(a.to) : Date.now())));
    const box = Object.assign(document.createElement('div'), { className: 'epoch' });
    box.appendChild(Object.assign(document.createElement('div'), { textContent: `pPASID ${e.pasid} (${e.pgtbl || 'no page table'}), owner ${e.owner}: allocated ${e.allocatedAt}, destroyed ${e.destroyedAt || '-'}, freed ${e.freedAt || '-'}` }));
    const lane = (who, from, to, kind) => {
      const row = Object.assign(document.createElement('div'), { className: 'lane' });
      row.appendChild(Object.assign(document.createElement('span'), { className: 'who', textContent: who }));
      const track = Object.assign(document.createElement('span'), { className: 'track' });
      const a = Date.parse(from);
      const b = to ? Date.parse(to) : t1;
      const bar = Object.assign(document.createElement('span'), { className: `bar ${kind}${to ? '' : ' open'}`, title: `${from} → ${to || 'now'}` });
      bar.style.left = `${((a - t0) / (t1 - t0)) * 100}%`;
      bar.style.width = `${Math.max(0.5, ((b - a) / (t1 - t0)) * 100)}%`;
      track.appendChild(bar);
      row.appendChild(track);
      box.appendChild(row);
    };
    lane(`${e.owner} (allocation)`, e.allocatedAt, e.freedAt, 'owner');
    for (const a of e.access) lane(`${a.holder} by ${a.by} (${a.endedBy || 'still held'})`, a.from, a.to, a.kind);
    return box;
  }

  // ---- wiring -----------------------------------------------------------------------------------------

  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => show(b.dataset.tab));
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token-form').hidden = true;
    start();
  });
  $('#pasid-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    loadPasid(Number($('#pasid').value)).catch((e) => status(e.message));
  });

  function start() {
    api('/v1/audit/state')
      .then(({ app }) => {
        $('#app').textContent = app;
        document.title = `ioasid-lab ${app}`;
        $('nav button[data-tab="pasids"]').hidden = app !== 'host-kernel';
      })
      .catch((e) => status(e.message));
    if (params.get('pasid')) {
      show('pasids');
      $('#pasid').value = params.get('pasid');
      loadPasid(Number(params.get('pasid'))).catch((e) => status(e.message));
      return;
    }
    show(params.get('tab') || 'traces');
    if (params.get('trace')) openTrace(params.get('trace')).catch((e) => status(e.message));
  }

  start();
})();
