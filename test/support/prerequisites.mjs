#!/usr/bin/env node
// `npm test` runs this first: the system programs the tests use must be present.
// As root with apt-get (CI, fresh machines) it installs what is missing; otherwise it
// stops and prints the exact command to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** program to look for → Debian package that provides it */
const NEEDED = [
  { program: 'chromium', paths: ['/usr/bin/chromium'], pkg: 'chromium', why: 'end-to-end tests in a real browser' },
  { program: 'java', paths: [], pkg: 'default-jre-headless', why: 'DynamoDB Local for the store conformance suite' },
  { program: 'openssl', paths: [], pkg: 'openssl', why: 'certificate checks' },
  { program: 'curl', paths: [], pkg: 'curl', why: 'TLS checks from a second client' },
  { program: 'haproxy', paths: ['/usr/sbin/haproxy'], pkg: 'haproxy', why: 'PROXY protocol v2 tests behind a real load balancer' },
  { program: 'unzip', paths: [], pkg: 'unzip', why: 'checking the bulk certificate zip files' },
  { program: 'pebble', paths: ['/usr/bin/pebble'], pkg: 'pebble', why: 'ACME tests against a real ACME server (pebble and pebble-challtestsrv)' },
  { program: 'slapd', paths: ['/usr/sbin/slapd'], pkg: 'slapd', why: 'directory sync tests against a real LDAP server' },
  { program: 'fc-ipa-gothic', paths: ['/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf'], pkg: 'fonts-ipafont-gothic', why: 'Japanese text in page screenshots' },
];

function has(item) {
  if (item.paths.some((p) => existsSync(p))) return true;
  return spawnSync('sh', ['-c', `command -v ${item.program}`], { stdio: 'ignore' }).status === 0;
}

const missing = NEEDED.filter((item) => !has(item));
if (missing.length === 0) process.exit(0);

const pkgs = missing.map((m) => m.pkg);
for (const m of missing) console.error(`missing ${m.program} (Debian package ${m.pkg}), needed for ${m.why}`);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !hasApt) {
  console.error(`\nInstall them, then run the tests again:\n  sudo apt-get update && sudo apt-get install -y ${pkgs.join(' ')}\n`);
  process.exit(1);
}
console.error(`installing ${pkgs.join(' ')} …`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
const still = NEEDED.filter((item) => !has(item));
if (still.length > 0) {
  console.error(`still missing after install: ${still.map((m) => m.program).join(', ')}`);
  process.exit(1);
}
