#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerCheckpoint } from './commands/checkpoint.js';
import { registerClass } from './commands/class.js';
import { registerCoordinator } from './commands/coordinator.js';
import { registerDemo } from './commands/demo.js';
import { registerFork } from './commands/fork.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerLog } from './commands/log.js';
import { registerPointer } from './commands/pointer.js';
import { registerRestore } from './commands/restore.js';
import { registerRun } from './commands/run.js';
import { registerSnapshots } from './commands/snapshots.js';
import { registerState } from './commands/state.js';
import { registerVerify } from './commands/verify.js';
import { armFailpoints } from '../core/failpoints.js';
import { guardOutputStreams } from './context.js';

export function buildProgram(): Command {
  const program = new Command('cairn')
    .description('Cairn: a disaggregated state backend for stream processors')
    .version('0.1.0')
    .option('--config <file>', 'configuration file (else $CAIRN_CONFIG, ./cairn.config.json, or the embedded default)')
    .option('--json', 'print one JSON document on stdout')
    .option('--quiet', 'print only errors')
    .option('--verbose', 'structured info logs on stderr')
    .showHelpAfterError(false)
    .exitOverride();
  // Usage errors are exit 2 with one line, like every other bad input.
  program.configureOutput({ outputError: (str, write) => write(`cairn: error: ${str.replace(/^error: /, '').trim()} [BAD_INPUT]\n`) });
  for (const register of [registerDemo, registerLog, registerRun, registerCheckpoint, registerSnapshots, registerPointer, registerRestore, registerVerify, registerState, registerFork, registerCoordinator, registerClass]) register(program);
  registerLifecycle(program);
  for (const cmd of allCommands(program)) cmd.exitOverride().configureOutput(program.configureOutput());
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

async function main(argv: string[]): Promise<void> {
  // The SDK warns about Node 20 on stderr; the CLI promises one line per error there.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  guardOutputStreams();
  // The one place the environment arms failure injection (tests kill the CLI mid-protocol).
  armFailpoints(process.env.CAIRN_FAILPOINTS);
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' || err.exitCode === 0;
      process.exitCode = ok ? 0 : 2;
      return;
    }
    throw err;
  }
}

await main(process.argv);
