#!/usr/bin/env node
// The README's test command: type-check, then every vitest project, then one plain
// closing line "tests: N passed, N failed, N skipped" that any CI log reader understands.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';

const run = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit', env: process.env }).status ?? 1;

if (run('npx', ['tsc', '--noEmit', '-p', '.']) !== 0) {
  console.log('tests: 0 passed, 1 failed (type check)');
  process.exit(1);
}
mkdirSync('test-results', { recursive: true });
const report = 'test-results/vitest.json';
if (existsSync(report)) rmSync(report);
const status = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)]);
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A file that fails outside any test (its set-up threw) has no failed test of its own: count it, so the line never says "0 failed" for a red run.
  const brokenFiles = (r.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
  const failed = r.numFailedTests + brokenFiles;
  console.log(`tests: ${r.numPassedTests} passed, ${failed} failed${brokenFiles ? ` (${brokenFiles} test file(s) failed to run)` : ''}, ${skipped} skipped`);
} else {
  console.log('tests: 0 passed, 1 failed (no report)');
}
process.exit(status);
