// Builds the banner: src/ -> static/ (or the directory given), minified by esbuild, each file also
// precompressed (.gz, .br) so the server never compresses on the request path. Deterministic: the same
// sources and lock file give the same bytes (a test compares the committed build with a fresh one).
//
//   npm ci && node build.mjs [out-dir]
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const here = new URL(".", import.meta.url).pathname;
const out = process.argv[2] ?? join(here, "static");
mkdirSync(out, { recursive: true });

for (const name of ["banner.js", "banner.css"]) {
  const result = await build({
    entryPoints: [join(here, "src", name)],
    write: false,
    minify: true,
    target: ["es2017", "chrome64", "firefox67", "safari12"],
    charset: "utf8",
    legalComments: "inline", // the "/*! koekje ..." line: what this file is
    logLevel: "error",
  });
  const code = result.outputFiles[0].contents;
  writeFileSync(join(out, name), code);
  writeFileSync(join(out, `${name}.gz`), gzipSync(code, { level: 9 }));
  const quality = { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: code.length };
  writeFileSync(join(out, `${name}.br`), brotliCompressSync(code, { params: quality }));
}
