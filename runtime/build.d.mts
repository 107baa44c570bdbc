/** Types of runtime/build.mjs for the TypeScript code that imports it (test/ha). */
import type { BuildOptions } from 'esbuild';

/** The esbuild options of the runtime bundle, written as `<outDir>/kanmon.mjs` (+ source map). */
export declare function bundleOptions(outDir: string): BuildOptions & { readonly outfile: string; readonly metafile: true };

/** The portal's static files, plus the WebAuthn browser library, into `<outDir>/static/` next to the bundle. */
export declare function copyStaticFiles(outDir: string): void;
