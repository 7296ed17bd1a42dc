// Writes jest's totals of this run to .jest-totals/<name>.json, so .ci/run can print one plain
// "N passed, N failed" line over the unit and the multi-process runs.
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

class TotalsReporter {
  constructor(globalConfig, options) {
    this.name = (options && options.name) || 'jest';
    this.root = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const dir = join(this.root, '.jest-totals');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, `${this.name}.json`),
      JSON.stringify({
        passed: results.numPassedTests,
        failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
        skipped: results.numPendingTests + results.numTodoTests,
      }),
    );
  }
}

module.exports = TotalsReporter;
