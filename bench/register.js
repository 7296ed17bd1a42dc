// Resolves the `@app/shared` alias for the compiled benchmarks (plain tsc does not rewrite paths;
// the Nest CLI does that for the apps).
'use strict';
const { join } = require('node:path');
require('../scripts/alias.js').registerSharedAlias(join(__dirname, '..', 'dist', 'bench'));
