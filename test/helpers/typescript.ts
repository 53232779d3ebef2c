import { join } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './cli.js';

/** A TypeScript program over `rootNames` with the project's own tsconfig.json settings (nothing emitted). */
export function projectProgram(rootNames: string[]): ts.Program {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(REPO_ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); } });
  if (!parsed) throw new Error('cannot read tsconfig.json');
  return ts.createProgram({ rootNames, options: { ...parsed.options, noEmit: true } });
}
