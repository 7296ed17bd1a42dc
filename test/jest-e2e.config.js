// Multi-process end-to-end tests: the three built apps run as real processes on free ports and are
// driven over HTTP. globalSetup builds them once; each test file starts its own stack.
/** @type {import('jest').Config} */
module.exports = {
  rootDir: '..',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.e2e-spec.ts'],
  reporters: ['default', ['<rootDir>/test/harness/totals-reporter.js', { name: 'e2e' }]],
  testEnvironment: '<rootDir>/test/harness/environment.js',
  globalSetup: '<rootDir>/test/harness/global-setup.js',
  // A ceiling for a hung test, not a speed rule: a stack's start on a loaded 2-core machine has taken 60 s.
  testTimeout: 120_000,
  maxWorkers: 1,
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  moduleNameMapper: {
    '^@app/shared$': '<rootDir>/libs/shared/src',
    '^@app/shared/(.*)$': '<rootDir>/libs/shared/src/$1',
  },
};
