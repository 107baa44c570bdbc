#!/usr/bin/env node
/**
 * `npm run build`: bundles the runtime into dist/ for the container image.
 *
 *   dist/kanmon.mjs        runtime/main.ts and every pure-JS dependency, one ESM file (+ source map)
 *   dist/healthcheck.mjs   the container health check (reads the health port from the config)
 *   dist/static/           the portal's static files, plus the WebAuthn browser library
 *
 * better-sqlite3 stays external: it is a native addon, installed in the image's node_modules.
 *
 * Importing this file builds nothing: it exports the bundle's esbuild options and the static
 * file copy, so that a test bundling the runtime elsewhere (test/ha) bundles it the same way.
 * Running it (`node runtime/build.mjs`) wipes and writes dist/.
 */
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'runtime', 'main.ts');

/** The esbuild options of the runtime bundle, written as `<outDir>/kanmon.mjs` (+ source map). */
export function bundleOptions(outDir) {
  return {
    entryPoints: [entry],
    outfile: join(outDir, 'kanmon.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    legalComments: 'linked',
    logLevel: 'warning',
    metafile: true,
    // Native addon; optional accelerators some dependencies try to load inside try/catch.
    external: ['better-sqlite3', 'bufferutil', 'utf-8-validate', 'pino-pretty'],
    // Bundled CommonJS dependencies call require() for Node built-ins; ESM has no require, so
    // give the bundle one (and the CommonJS path globals) bound to the bundle's own location.
    banner: {
      js: [
        "import { createRequire as __kanmonCreateRequire } from 'node:module';",
        "import { fileURLToPath as __kanmonFileURLToPath } from 'node:url';",
        "import { dirname as __kanmonDirname } from 'node:path';",
        'const require = __kanmonCreateRequire(import.meta.url);',
        'const __filename = __kanmonFileURLToPath(import.meta.url);',
        'const __dirname = __kanmonDirname(__filename);',
      ].join('\n'),
    },
  };
}

/** The portal's static files, plus the WebAuthn browser library, into `<outDir>/static/` next to the bundle. */
export function copyStaticFiles(outDir) {
  const staticSource = join(root, 'runtime', 'portal', 'static');
  const staticTarget = join(outDir, 'static');
  if (existsSync(staticSource)) cpSync(staticSource, staticTarget, { recursive: true });
  try {
    // Served to browsers by the portal; copied so the image needs no lookup into node_modules.
    const require = createRequire(import.meta.url);
    const pkgRoot = dirname(dirname(require.resolve('@simplewebauthn/browser')));
    const umd = join(pkgRoot, 'dist', 'bundle', 'index.umd.min.js');
    if (existsSync(umd)) {
      mkdirSync(staticTarget, { recursive: true });
      cpSync(umd, join(staticTarget, 'simplewebauthn-browser.js'));
    }
  } catch {
    // Not installed: the portal resolves it at start-up instead.
  }
}

async function buildDist() {
  const out = join(root, 'dist');
  if (!existsSync(entry)) {
    process.stderr.write(`build: ${relative(root, entry)} does not exist yet, so there is nothing to bundle. It is the runtime's entry point (\`npm start\` runs it); add it, then run \`npm run build\` again.\n`);
    process.exit(1);
  }

  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  const result = await build(bundleOptions(out));

  // The container health check: /healthz on the health port from KANMON_CONFIG_JSON; without a
  // health listener configured, a TCP connect to the TLS port is the best available signal.
  writeFileSync(
    join(out, 'healthcheck.mjs'),
    `import { connect } from 'node:net';
let server = {};
try { server = JSON.parse(process.env.KANMON_CONFIG_JSON ?? '{}').server ?? {}; } catch { /* defaults below */ }
const fail = () => process.exit(1);
setTimeout(fail, 4000).unref();
if (server.healthPort) {
  fetch(\`http://127.0.0.1:\${server.healthPort}/healthz\`).then((r) => process.exit(r.ok ? 0 : 1), fail);
} else {
  const socket = connect(server.port ?? 8443, '127.0.0.1', () => { socket.end(); process.exit(0); });
  socket.on('error', fail);
}
`,
  );

  copyStaticFiles(out);

  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  process.stdout.write(`build: dist/kanmon.mjs and friends written (${(bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
}

// Only when run as a program (`npm run build`, the Dockerfile), never when imported.
if (isMainModule()) await buildDist();

function isMainModule() {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
