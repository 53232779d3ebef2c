import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { projectProgram } from '../helpers/typescript.js';

/**
 * The examples are what users copy: they must compile under the project's strict settings,
 * import Cairn the way a user does (the package name, not ../../src), and get their types
 * from `Processor<Value, State>` rather than from casts.
 */
const EXAMPLES = join(REPO_ROOT, 'examples');
const files = readdirSync(EXAMPLES, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join(EXAMPLES, f));

const program = (): ts.Program => projectProgram(files);

describe('examples/', () => {
  it('has processors to check', () => {
    expect(files.map((f) => f.slice(EXAMPLES.length + 1)).sort()).toEqual(['bank/fees-v2.ts', 'bank/processor.ts']);
  });

  it('type-check under the strict settings, importing Cairn as `cairn-state`, without casts', () => {
    const p = program();
    const diagnostics = ts.getPreEmitDiagnostics(p).filter((d) => d.file && files.includes(d.file.fileName));
    expect(diagnostics.map((d) => `${d.file!.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)).toEqual([]);
    for (const file of files) {
      const source = p.getSourceFile(file)!;
      const casts: string[] = [];
      const imports: string[] = [];
      const visit = (node: ts.Node) => {
        if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) {
          // `as const` narrows, it does not overrule the checker.
          if (!(ts.isAsExpression(node) && node.type.getText(source) === 'const')) casts.push(node.getText(source));
        }
        if (ts.isImportDeclaration(node)) imports.push((node.moduleSpecifier as ts.StringLiteral).text);
        ts.forEachChild(node, visit);
      };
      visit(source);
      expect(casts, file).toEqual([]);
      expect(imports.filter((m) => m.includes('src')), file).toEqual([]);
    }
    expect(p.getSourceFile(join(EXAMPLES, 'bank/processor.ts'))!.getText()).toMatch(/from 'cairn-state'/);
  });
});
