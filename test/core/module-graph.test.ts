import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The packages a fresh Node process has loaded after importing one entry point of the
 * package (from source, through tsx). fastify and kafkajs are CommonJS, so whatever loads
 * them, even from an ES module, leaves them in the CommonJS module cache.
 */
function packagesLoadedBy(entry: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    await import(${JSON.stringify(join(ROOT, entry))});
    const cache = createRequire(import.meta.url).cache;
    const names = new Set(Object.keys(cache).flatMap((f) => {
      const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(f.slice(f.lastIndexOf('node_modules/')));
      return m ? [m[1]] : [];
    }));
    process.stdout.write(JSON.stringify([...names].sort()));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as string[];
}

describe('module graph', () => {
  it("import 'cairn-state' loads neither fastify nor kafkajs (nor the AWS SDK)", () => {
    const loaded = packagesLoadedBy('src/index.ts');
    expect(loaded.filter((p) => p === 'fastify' || p === 'kafkajs' || p.startsWith('@aws-sdk/'))).toEqual([]);
    // The check sees CommonJS packages at all: the state layer's LevelDB binding is one.
    expect(loaded).toContain('classic-level');
  });

  it('the subpaths that need them load them', () => {
    expect(packagesLoadedBy('src/coordinator/index.ts')).toContain('fastify');
    expect(packagesLoadedBy('src/log/index.ts')).toContain('kafkajs');
  });

  it('every subpath export in package.json has its entry point in src/', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { import?: string } | string> };
    const entries = Object.entries(pkg.exports).flatMap(([, target]) => (typeof target === 'object' && target.import ? [target.import] : []));
    expect(entries.length).toBeGreaterThanOrEqual(6);
    for (const js of entries) expect(existsSync(join(ROOT, js.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'))), js).toBe(true);
  });
});
