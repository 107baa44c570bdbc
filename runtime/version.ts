import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package version, read once: from the sources it is ../package.json, from the bundle in dist/ too. */
function readVersion(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, '..', 'package.json'), join(here, 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kanmon' && pkg.version) return pkg.version;
    } catch {
      // try the next place
    }
  }
  return '0.0.0-unknown';
}

export const KANMON_VERSION = readVersion();
