// A progress bar for long commands (bench, and replay, fuzz and scenario runs): cli-progress on stderr when it
// is a terminal; elsewhere (CI, a pipe) one plain line at each tenth, so logs stay readable. Usage:
//   const bar = progress('replay', rows.length); for (...) { ...; bar.tick(); } bar.done();
'use strict';
const { SingleBar, Presets } = require('cli-progress');

/**
 * @param {string} label what is being done
 * @param {number} total how many steps
 * @param {{ stream?: NodeJS.WriteStream }} [opts]
 * @returns {{ tick(n?: number): void, done(): void }}
 */
function progress(label, total, opts = {}) {
  const stream = opts.stream || process.stderr;
  let done = 0;
  if (stream.isTTY) {
    const bar = new SingleBar({ format: `${label} [{bar}] {percentage}% {value}/{total} {eta_formatted}`, stream, hideCursor: true }, Presets.shades_classic);
    bar.start(total, 0);
    return {
      tick: (n = 1) => bar.update((done = Math.min(total, done + n))),
      done: () => bar.stop(),
    };
  }
  let shown = -1;
  const line = () => {
    const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
    if (tenth === shown) return;
    shown = tenth;
    stream.write(`${label}: ${done}/${total} (${tenth * 10}%)\n`);
  };
  line();
  return {
    tick: (n = 1) => {
      done = Math.min(total, done + n);
      line();
    },
    done: () => {
      done = total;
      line();
    },
  };
}

module.exports = { progress };
