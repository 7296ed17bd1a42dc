// Unit tests: plain TypeScript domain code beside its source (*.spec.ts). No Nest import may
// reach a unit test: jest cannot load the ESM-only NestJS 12 packages on Node 20 (DESIGN §7).
/** @type {import('jest').Config} */
module.exports = {
  rootDir: '.',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/stack', '<rootDir>/replay', '<rootDir>/fuzz', '<rootDir>/bench'],
  testMatch: ['**/*.spec.ts'],
  reporters: ['default', ['<rootDir>/test/harness/totals-reporter.js', { name: 'unit' }]],
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  moduleNameMapper: {
    '^@app/shared$': '<rootDir>/libs/shared/src',
    '^@app/shared/(.*)$': '<rootDir>/libs/shared/src/$1',
  },
};
