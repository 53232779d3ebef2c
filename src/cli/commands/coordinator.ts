import type { Command } from 'commander';
import { createLog } from '../../log/create.js';
import { CairnError } from '../../core/errors.js';
import { COORDINATOR_DEFAULTS } from '../../core/defaults.js';
import { durationFlag, formatDuration } from '../../core/durations.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createCoordinatorMetrics } from '../../coordinator/metrics.js';
import { buildCoordinatorServer, isLoopback } from '../../coordinator/server.js';
import { action, parsePort } from '../context.js';

interface CoordinatorFlags {
  host: string;
  port?: string;
  policy?: string;
  trimInterval?: string;
  trimDelay?: string;
  replicaTtl?: string;
}


export function registerCoordinator(program: Command): void {
  program
    .command('coordinator')
    .description('the log-trim coordinator endpoint: reports, snapshot requests, safe trims, status page and metrics')
    .option('--host <host>', 'address to listen on (non-loopback needs $CAIRN_COORDINATOR_TOKEN)', COORDINATOR_DEFAULTS.host)
    .option('--port <port>', `port to listen on (default: the port of coordinator.url, else ${COORDINATOR_DEFAULTS.port}; 0 = any free port)`)
    .option('--policy <policy>', 'trim policy: snapshot (trim behind the archived LSN) or replicas (also behind every live replica)')
    .option('--trim-interval <duration>', `automatic trim every this long, e.g. 30s; 0 = only on request (default ${formatDuration(COORDINATOR_DEFAULTS.trimIntervalMs)} or coordinator.trimIntervalMs)`)
    .option('--trim-delay <duration>', `trim only behind snapshots at least this old (default ${formatDuration(COORDINATOR_DEFAULTS.trimDelayMs)} or coordinator.trimDelayMs)`)
    .option('--replica-ttl <duration>', `a replica silent this long no longer holds back the replicas policy (default ${formatDuration(COORDINATOR_DEFAULTS.replicaTtlMs)} or coordinator.replicaTtlMs)`)
    .action(
      action(async (ctx, flags: CoordinatorFlags) => {
        const c = ctx.config.coordinator;
        const policy = flags.policy ?? c?.policy ?? COORDINATOR_DEFAULTS.policy;
        if (policy !== 'snapshot' && policy !== 'replicas') throw new CairnError('BAD_INPUT', `invalid --policy ${JSON.stringify(policy)}: expected snapshot or replicas`);
        const trimIntervalMs = flags.trimInterval !== undefined ? durationFlag(flags.trimInterval, '--trim-interval') : (c?.trimIntervalMs ?? COORDINATOR_DEFAULTS.trimIntervalMs);
        const trimDelayMs = flags.trimDelay !== undefined ? durationFlag(flags.trimDelay, '--trim-delay') : (c?.trimDelayMs ?? COORDINATOR_DEFAULTS.trimDelayMs);
        const replicaTtlMs = flags.replicaTtl !== undefined ? durationFlag(flags.replicaTtl, '--replica-ttl') : (c?.replicaTtlMs ?? COORDINATOR_DEFAULTS.replicaTtlMs);
        const port = flags.port !== undefined ? parsePort(flags.port, '--port') : c ? Number(new URL(c.url).port || 80) : COORDINATOR_DEFAULTS.port;
        const token = process.env.CAIRN_COORDINATOR_TOKEN || undefined;
        if (!token && !isLoopback(flags.host)) {
          throw new CairnError('BAD_INPUT', `refusing to listen on ${flags.host} without CAIRN_COORDINATOR_TOKEN: set a token, or listen on loopback`);
        }
        if (!process.env.CAIRN_LOG_LEVEL && !ctx.globals.quiet) ctx.logger.level = 'info';
        if (!token) ctx.logger.warn({ host: flags.host }, 'CAIRN_COORDINATOR_TOKEN is not set: POST endpoints are unauthenticated, listening on loopback only');

        const metrics = createCoordinatorMetrics();
        const coordinator = new Coordinator({
          createLog: () => createLog(ctx.config.log, { logger: ctx.logger }),
          repository: ctx.cairn.snapshots,
          placement: ctx.cairn.placement,
          policy,
          trimIntervalMs,
          trimDelayMs,
          replicaTtlMs,
          logger: ctx.logger,
          metrics,
        });
        const app = await buildCoordinatorServer({ coordinator, metrics, logger: ctx.logger, ...(token ? { token } : {}) });
        let address: string;
        try {
          address = await app.listen({ host: flags.host, port });
        } catch (err) {
          await coordinator.close();
          throw new CairnError('LISTEN_FAILED', `cannot listen on ${flags.host}:${port}: ${(err as Error).message}`, { cause: err });
        }
        coordinator.start();
        const info = { url: address, policy, trimIntervalMs, trimDelayMs, replicaTtlMs, auth: token ? 'bearer' : 'none' };
        ctx.logger.info(info, 'coordinator listening');
        ctx.output(info, () => `cairn coordinator listening on ${address} (policy ${policy}, trim every ${trimIntervalMs} ms)`);
        await new Promise<void>((resolve) => {
          const stop = (signal: NodeJS.Signals) => {
            ctx.logger.info({ signal }, 'coordinator stopping');
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await app.close();
        await coordinator.close();
      }),
    );
}
