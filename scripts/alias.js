// Resolves the `@app/shared` alias for code compiled with plain tsc (the benchmarks, the replay tools): tsc does
// not rewrite paths, the Nest CLI does that for the apps. `distRoot` is the tsc outDir of that build.
'use strict';
const Module = require('node:module');
const { join } = require('node:path');

function registerSharedAlias(distRoot) {
  const shared = join(distRoot, 'libs', 'shared', 'src');
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    if (request === '@app/shared') request = shared;
    else if (request.startsWith('@app/shared/')) request = join(shared, request.slice('@app/shared/'.length));
    return resolve.call(this, request, ...rest);
  };
}

module.exports = { registerSharedAlias };
