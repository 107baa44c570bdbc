import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * The portal's scripts and styles, read once at start-up into memory. Looked up by exact
 * name from a fixed set, so no request can reach any other file.
 */
export function loadStaticFiles(): ReadonlyMap<string, StaticFile> {
  const here = dirname(fileURLToPath(import.meta.url));
  // Sources run from runtime/portal/; the bundle runs from dist/ with the files in dist/static/.
  const dir = [join(here, 'static'), join(here, '..', 'static')].find((d) => existsSync(join(d, 'portal.js')));
  if (!dir) throw new Error(`portal static files not found next to ${here}`);
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, entry(readFileSync(join(dir, name)), type));
  }
  if (!files.has('simplewebauthn-browser.js')) {
    const require = createRequire(import.meta.url);
    const pkgRoot = dirname(dirname(require.resolve('@simplewebauthn/browser')));
    files.set('simplewebauthn-browser.js', entry(readFileSync(join(pkgRoot, 'dist', 'bundle', 'index.umd.min.js')), TYPES['.js']!));
  }
  return files;
}

function entry(body: Buffer, contentType: string): StaticFile {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}
