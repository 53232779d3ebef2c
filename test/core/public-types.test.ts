import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { projectProgram } from '../helpers/typescript.js';

/**
 * Every type a public method of the package returns can be named by its users: it is exported
 * from the root (`cairn-state`) or from a subpath. Checked with the compiler over the entry
 * points: for each class the root exports, each public method's and getter's return type —
 * through Promise, arrays, maps, sets and async iterables — must be an exported name when it
 * is one of the package's own named types.
 */
const ENTRIES = ['index.ts', 'store/index.ts', 'log/index.ts', 'snapshots/index.ts', 'coordinator/index.ts', 'testing/index.ts'].map((f) => join(REPO_ROOT, 'src', f));
const SRC = join(REPO_ROOT, 'src') + '/';

const program = (): ts.Program => projectProgram(ENTRIES);

describe('public types', () => {
  it('every type a public method of an exported class returns is exported', () => {
    const p = program();
    const checker = p.getTypeChecker();
    const exported = new Set<string>();
    const rootClasses: ts.Symbol[] = [];
    for (const entry of ENTRIES) {
      const module = checker.getSymbolAtLocation(p.getSourceFile(entry)!)!;
      for (const symbol of checker.getExportsOfModule(module)) {
        const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
        exported.add(target.name);
        if (entry.endsWith('src/index.ts') && target.flags & ts.SymbolFlags.Class) rootClasses.push(target);
      }
    }

    /** The package's own named types inside `type` (unwrapping containers and unions). */
    const named = (type: ts.Type, out: Set<string>, depth = 0): void => {
      if (depth > 4) return;
      if (type.isUnion() || type.isIntersection()) return type.types.forEach((t) => named(t, out, depth + 1));
      const symbol = type.aliasSymbol ?? type.getSymbol();
      const declared = symbol?.declarations?.[0]?.getSourceFile().fileName ?? '';
      if (symbol && declared.startsWith(SRC) && !['__type', '__object'].includes(symbol.name)) out.add(symbol.name);
      const args = type.aliasTypeArguments ?? (type.flags & ts.TypeFlags.Object && (type as ts.ObjectType).objectFlags & ts.ObjectFlags.Reference ? checker.getTypeArguments(type as ts.TypeReference) : []);
      for (const arg of args) named(arg, out, depth + 1);
    };

    const missing: string[] = [];
    let checked = 0;
    for (const cls of rootClasses) {
      const instance = checker.getDeclaredTypeOfSymbol(cls);
      for (const member of checker.getPropertiesOfType(instance)) {
        const decl = member.valueDeclaration ?? member.declarations?.[0];
        if (!decl || ts.getCombinedModifierFlags(decl) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected) || member.name.startsWith('#')) continue;
        const type = checker.getTypeOfSymbolAtLocation(member, decl);
        const signatures = type.getCallSignatures();
        const returns = signatures.length > 0 ? signatures.map((s) => s.getReturnType()) : [type];
        const names = new Set<string>();
        for (const r of returns) named(r, names);
        checked++;
        for (const name of names) if (!exported.has(name)) missing.push(`${cls.name}.${member.name} -> ${name}`);
      }
    }
    expect(rootClasses.map((c) => c.name)).toContain('Cairn');
    expect(checked).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });
});
