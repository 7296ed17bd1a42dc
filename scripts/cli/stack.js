// Where the CLI finds the stack (data/stack.json, which `npm start` writes, or the environment) and how it
// reads it: GET with the right token, failures as a CliError carrying a sysexits(3) exit code.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

/** sysexits.h codes, so a script can tell "the stack is down" from "you may not" from "no such thing". */
const EXIT = { OK: 0, USAGE: 64, DATAERR: 65, NOINPUT: 66, UNAVAILABLE: 69, SOFTWARE: 70, NOPERM: 77 };

class CliError extends Error {
  constructor(message, exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

function stack() {
  let file = {};
  try {
    file = JSON.parse(readFileSync(join(process.env.DATA_DIR || join(__dirname, '..', '..', 'data'), 'stack.json'), 'utf8'));
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

function exitFor(status) {
  if (status === 401 || status === 403) return EXIT.NOPERM;
  if (status === 404) return EXIT.NOINPUT;
  if (status >= 400 && status < 500) return EXIT.DATAERR;
  return EXIT.SOFTWARE;
}

/** GET `url` with a bearer token; the JSON (or text) body, or a CliError naming the errno the app answered. */
async function get(url, token) {
  let res;
  try {
    res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  } catch (err) {
    throw new CliError(`${new URL(url).origin} does not answer (${err.cause?.code ?? err.message}): is the stack up? (npm start)`, EXIT.UNAVAILABLE);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      const p = JSON.parse(text);
      message = `${p.errno}: ${p.message}`;
    } catch {
      /* not a problem body */
    }
    throw new CliError(`${new URL(url).pathname}: ${res.status} ${message}`, exitFor(res.status));
  }
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

/** Every journal row of one app after `afterSeq`, page by page (keyset on seq, as the audit plane pages). */
async function journalAfter(url, token, afterSeq, query = {}) {
  const out = [];
  for (let after = afterSeq; ; ) {
    const q = new URLSearchParams({ ...query, limit: '10000', afterSeq: String(after) });
    const page = await get(`${url}/v1/audit/events?${q}`, token);
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1].seq;
  }
}

module.exports = { EXIT, CliError, stack, get, journalAfter };
