import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The packages a fresh Node process has loaded after importing one entry point of the
 * package from source (through tsx): the same probe .ci/run runs on the built package
 * (test/package/check-entry-points.mjs), which reads the CommonJS module cache — fastify and
 * kafkajs are CommonJS, so whatever loads them, even from an ES module, leaves them there.
 */
function packagesLoadedBy(entry: string): string[] {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/package/check-entry-points.mjs'), '--probe', join(ROOT, entry)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return (JSON.parse(out) as { packages: string[] }).packages;
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

/** Folders by layer: a file imports only from its own folder or from lower layers. */
const LAYER: Record<string, number> = { core: 0, store: 1, log: 1, state: 1, snapshots: 2, forks: 3, runtime: 4, coordinator: 5, testing: 5, cli: 6 };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('layering', () => {
  const files = sourceFiles(join(ROOT, 'src')).map((f) => relative(join(ROOT, 'src'), f));

  it('no folder imports from a folder above it, and store, log and state know nothing of each other', () => {
    const upward: string[] = [];
    for (const file of files) {
      const folder = file.split('/')[0]!;
      if (!(folder in LAYER)) continue; // src/index.ts sits on top
      const text = readFileSync(join(ROOT, 'src', file), 'utf8');
      for (const [, spec] of text.matchAll(/(?:from\s+|import\()'(\.{1,2}\/[^']+)'/g)) {
        const target = relative(join(ROOT, 'src'), join(ROOT, 'src', dirname(file), spec!)).split('/')[0]!;
        if (target === folder) continue;
        if (!(target in LAYER) || LAYER[target]! >= LAYER[folder]!) upward.push(`${file} -> ${spec}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('only the CLI entry point reads CAIRN_FAILPOINTS; production code marks points and nothing else', () => {
    const readers = files.filter((f) => /process\.env\.CAIRN_FAILPOINTS|process\.env\[['"]CAIRN_FAILPOINTS/.test(readFileSync(join(ROOT, 'src', f), 'utf8')));
    expect(readers).toEqual(['cli/main.ts']);
  });
});
