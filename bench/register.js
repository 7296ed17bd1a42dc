// Resolves the `@app/shared` alias for the compiled benchmarks (plain tsc does not rewrite paths;
// the Nest CLI does that for the apps).
'use strict';
const Module = require('node:module');
const { join } = require('node:path');

const SHARED = join(__dirname, '..', 'dist', 'bench', 'libs', 'shared', 'src');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === '@app/shared') request = SHARED;
  else if (request.startsWith('@app/shared/')) request = join(SHARED, request.slice('@app/shared/'.length));
  return resolve.call(this, request, ...rest);
};
