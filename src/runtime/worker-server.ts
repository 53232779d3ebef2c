import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { CairnError, toCairnError } from '../core/errors.js';
import { PARTITION_NAME } from '../core/names.js';
import type { PartitionProcessor } from './partition-processor.js';

/**
 * A worker's HTTP endpoint (`cairn run --metrics-port`): Prometheus metrics, health and
 * readiness for an orchestrator, and live queries of the partitions the worker runs (Kafka
 * Streams' interactive queries), each answered from one LevelDB snapshot of the live state.
 *
 *   GET /metrics                          Prometheus text format
 *   GET /healthz                          200 while the process serves
 *   GET /readyz                           200 once every partition it runs has opened its state, else 503
 *   GET /v1/partitions/:p/state/:key      { partition, key, value, lsn }; 404 for a key not there,
 *                                         and for a partition this worker does not run (saying so)
 *   GET /v1/partitions/:p/state?gte=&lt=&limit=   { partition, lsn, entries: [{key, value}], more }
 *
 * Binds to loopback by default: state and metrics name accounts and partitions, and
 * exposing them is the operator's decision.
 */
export interface WorkerServerOptions {
  registry: Registry;
  port: number;
  host?: string;
  node: string;
  /** The partitions this worker runs right now (a group worker's change with rebalances). */
  partitions(): ReadonlyMap<string, PartitionProcessor>;
}

const RANGE_LIMIT_DEFAULT = 100;
const RANGE_LIMIT_MAX = 1000;

export async function serveWorker(o: WorkerServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const host = o.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    handle(o, req, res).catch((err: unknown) => send(res, 500, { error: toCairnError(err).toJSON() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new CairnError('LISTEN_FAILED', `cannot serve on ${host}:${o.port}: ${err.message}`, { cause: err })));
    server.listen(o.port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : o.port;
  return {
    url: `http://${host}:${bound}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(o: WorkerServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://worker');
  if (req.method !== 'GET') return send(res, 405, { error: { code: 'BAD_INPUT', message: 'only GET is served' } });
  if (url.pathname === '/metrics') {
    res.writeHead(200, { 'content-type': o.registry.contentType }).end(await o.registry.metrics());
    return;
  }
  if (url.pathname === '/healthz') return send(res, 200, { status: 'ok', node: o.node });
  if (url.pathname === '/readyz') {
    const opening = [...o.partitions()].filter(([, p]) => !p.isOpen).map(([name]) => name);
    return send(res, opening.length === 0 ? 200 : 503, { ready: opening.length === 0, node: o.node, partitions: [...o.partitions().keys()].sort(), opening });
  }
  const m = /^\/v1\/partitions\/([^/]+)\/state(?:\/(.+))?$/.exec(url.pathname);
  if (!m) return send(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${url.pathname}` } });
  const partition = decodeURIComponent(m[1]!);
  if (!PARTITION_NAME.test(partition)) return send(res, 400, { error: { code: 'BAD_INPUT', message: `invalid partition name ${JSON.stringify(partition)}` } });
  const runner = o.partitions().get(partition);
  if (!runner?.isOpen) {
    return send(res, 404, { error: { code: 'NOT_FOUND', message: `partition ${partition} is not running on this worker (${o.node})`, details: { partition, node: o.node } } });
  }
  if (m[2] !== undefined) {
    const key = decodeURIComponent(m[2]);
    const { lsn, entries } = await runner.query({ key });
    if (entries.length === 0) return send(res, 404, { error: { code: 'NOT_FOUND', message: `no key ${JSON.stringify(key)} in ${partition} at LSN ${lsn}`, details: { partition, key, lsn } } });
    return send(res, 200, { partition, key, value: entries[0]!.value, lsn });
  }
  const limit = Number(url.searchParams.get('limit') ?? RANGE_LIMIT_DEFAULT);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > RANGE_LIMIT_MAX) return send(res, 400, { error: { code: 'BAD_INPUT', message: `limit must be 1..${RANGE_LIMIT_MAX}` } });
  const gte = url.searchParams.get('gte') ?? undefined;
  const lt = url.searchParams.get('lt') ?? undefined;
  // One more than asked tells whether the range goes on.
  const { lsn, entries } = await runner.query({ ...(gte !== undefined ? { gte } : {}), ...(lt !== undefined ? { lt } : {}), limit: limit + 1 });
  return send(res, 200, { partition, lsn, entries: entries.slice(0, limit), more: entries.length > limit });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}
