// A node test environment that remembers whether the current test failed, so the harness can
// attach every app's stderr tail to the failure (see harness/hooks.ts).
const { TestEnvironment } = require('jest-environment-node');

class StackEnvironment extends TestEnvironment {
  async handleTestEvent(event) {
    if (event.name === 'test_start') this.global.__testFailed = false;
    if (event.name === 'test_fn_failure' || event.name === 'hook_failure') this.global.__testFailed = true;
  }
}

module.exports = StackEnvironment;
