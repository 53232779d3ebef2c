// Imports the built package by its own name, as an installed copy is imported: every entry
// point in package.json's "exports" must load from dist/, and the root must load neither
// fastify nor kafkajs (nor the AWS SDK). Run by .ci/run after `npm ci` has built dist/.
// `node test/package/check-entry-points.mjs` prints what it checked and exits 1 on a miss.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
const require = createRequire(import.meta.url);

if (process.argv[2] === '--probe') {
  // A fresh process per entry point: what it loads is all that is in the module cache.
  const started = performance.now();
  const mod = await import(process.argv[3]);
  const ms = performance.now() - started;
  const packages = new Set(Object.keys(require.cache).flatMap((f) => {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f.slice(f.lastIndexOf('node_modules/')));
    return m ? [m[1]] : [];
  }));
  process.stdout.write(JSON.stringify({ exports: Object.keys(mod).length, ms: Math.round(ms), packages: [...packages].sort() }));
  process.exit(0);
}

let failed = false;
for (const sub of Object.keys(pkg.exports)) {
  if (sub === './package.json') continue;
  const specifier = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--probe', specifier], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    failed = true;
    console.log(`FAIL ${specifier}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    continue;
  }
  const probe = JSON.parse(r.stdout);
  const heavy = probe.packages.filter((p) => p === 'fastify' || p === 'kafkajs' || p.startsWith('@aws-sdk/'));
  const bad = sub === '.' && heavy.length > 0;
  failed ||= bad || probe.exports === 0;
  console.log(`${bad || probe.exports === 0 ? 'FAIL' : 'ok  '} ${specifier}: ${probe.exports} exports, ${probe.ms} ms, loads ${heavy.length ? heavy.join(', ') : 'no fastify/kafkajs/AWS SDK'}`);
}
process.exit(failed ? 1 : 0);
