// Resolves the `@app/shared` alias for the compiled replay tools (dist/tools).
'use strict';
const { join } = require('node:path');
require('../scripts/alias.js').registerSharedAlias(join(__dirname, '..', 'dist', 'tools'));
