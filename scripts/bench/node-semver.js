// Times node-semver's maxSatisfying on the tags tagsmith's policy benchmark selects from.
// Usage: node node-semver.js TAGS_FILE RANGE FILTER_REGEX
'use strict';
const fs = require('fs');
const semver = require('semver');

const [file, range, filter] = process.argv.slice(2);
const tags = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
const runs = 7;

function best(f) {
  let min = Infinity;
  let result;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    result = f();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    min = Math.min(min, ms);
  }
  return [min, result];
}

// The same work as tagsmith's policy: exclude signatures, filter and extract, then pick the max.
const exclude = /^.*\.sig$/;
const pattern = new RegExp(filter.replace(/\(\?P</g, '(?<'));
const [withFilterMs, selected] = best(() => {
  const keys = [];
  const originals = new Map();
  for (const tag of tags) {
    if (exclude.test(tag)) continue;
    const m = pattern.exec(tag);
    if (!m) continue;
    const key = m.groups.version;
    keys.push(key);
    if (!originals.has(key)) originals.set(key, tag);
  }
  const max = semver.maxSatisfying(keys, range);
  return max === null ? null : originals.get(max);
});
const [rangeOnlyMs, rangeOnly] = best(() => semver.maxSatisfying(tags, range));

console.log(`node_semver_version=${require('semver/package.json').version}`);
console.log(`node_version=${process.version}`);
console.log(`node_selected=${selected}`);
console.log(`node_range_only_selected=${rangeOnly}`);
console.log(`node_range_filter_ms=${withFilterMs.toFixed(1)}`);
console.log(`node_range_only_ms=${rangeOnlyMs.toFixed(1)}`);
