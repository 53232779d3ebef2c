import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CairnError, toCairnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PARTITION_NAME } from '../core/names.js';
import { firstIssue } from '../core/validation.js';
import { reportSchema, snapshotRequestSchema, trimRequestSchema } from '../runtime/coordinator-protocol.js';
import type { Coordinator } from './coordinator.js';
import type { CoordinatorMetrics } from './metrics.js';
import { renderStatusPage } from './status-page.js';

export interface CoordinatorServerOptions {
  coordinator: Coordinator;
  metrics: CoordinatorMetrics;
  logger: Logger;
  /** Bearer token every POST must carry; without one, POSTs are open (loopback only). */
  token?: string;
  /** Largest request body accepted, in bytes. */
  bodyLimit?: number;
}

const partitionParams = z.object({ p: z.string().regex(PARTITION_NAME, 'expected [a-z0-9][a-z0-9._-]{0,62}') }).strict();

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = firstIssue(result.error);
    throw new CairnError('BAD_INPUT', `invalid ${what}: ${issue.path}: ${issue.message}`);
  }
  return result.data;
}

function statusOf(err: CairnError): number {
  switch (err.code) {
    case 'BAD_INPUT':
      return 400;
    case 'NOT_FOUND':
      return 404;
    case 'LOG_UNAVAILABLE':
    case 'LOG_BUSY':
    case 'STORE_UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer ([^\s]+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The coordinator's HTTP API (README, "The coordinator"). Every input is checked before it reaches the
 * coordinator: names by pattern, bodies by zod, sizes by the body limit. Bad input is a
 * 4xx with a one-line reason, never a crash: the error handler turns anything thrown into
 * a JSON answer.
 */
export async function buildCoordinatorServer(o: CoordinatorServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: o.logger as FastifyBaseLogger,
    // One line per request comes from our onResponse hook, with the route pattern.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit ?? 64 * 1024,
    // Longer than any valid name, short enough that no path costs real memory.
    routerOptions: { maxParamLength: 256 },
    return503OnClosing: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });
  const { coordinator, metrics } = o;

  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST' || !o.token) return;
    if (!tokenMatches(request.headers.authorization, o.token)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: { code: 'UNAUTHORIZED', message: 'missing or wrong bearer token' } });
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: ROUTE_METHODS.includes(request.method) ? request.method : 'other', route, status: String(reply.statusCode) });
    const level = reply.statusCode >= 500 ? 'error' : reply.statusCode >= 400 ? 'warn' : request.method === 'POST' ? 'info' : 'debug';
    request.log[level]({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  app.setErrorHandler(async (error: unknown, request, reply) => {
    const fastifyStatus = (error as { statusCode?: number }).statusCode;
    if (typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500) {
      // The framework's own rejections: malformed JSON, too large, wrong content type.
      return reply.code(fastifyStatus).send({ error: { code: 'BAD_INPUT', message: (error as Error).message.split('\n')[0] } });
    }
    const e = toCairnError(error);
    const status = statusOf(e);
    if (status >= 500) request.log.error({ err: e.toJSON() }, 'request failed');
    return reply.code(status).send({ error: { code: e.code, message: e.message.split('\n')[0], ...(e.details ? { details: e.details } : {}) } });
  });
  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0]!;
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${path}` } });
  });
  // Every method a path is registered for, so the other methods can be answered 405 + Allow.
  const allowed = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const set = allowed.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) set.add(m);
    allowed.set(route.url, set);
  });

  /** The partition named in the path, checked by pattern (400) and existence (404). */
  const partitionOf = async (request: FastifyRequest): Promise<string> => {
    const { p } = parse(partitionParams, request.params, 'partition name');
    if (!(await coordinator.isKnown(p))) throw new CairnError('NOT_FOUND', `unknown partition ${p}: neither the log nor the store holds it`);
    return p;
  };

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  app.get('/', async (_request, reply: FastifyReply) => {
    return reply.type('text/html; charset=utf-8').send(renderStatusPage(await coordinator.statuses(), { policy: coordinator.policy, now: new Date() }));
  });
  app.get('/v1/partitions', async () => ({ partitions: await coordinator.statuses() }));
  app.get('/v1/partitions/:p', async (request) => coordinator.status(await partitionOf(request)));
  app.post('/v1/partitions/:p/reports', async (request) => {
    const partition = await partitionOf(request);
    return coordinator.report(partition, parse(reportSchema, request.body, 'report'));
  });
  app.post('/v1/partitions/:p/trim', async (request) => {
    const partition = await partitionOf(request);
    const { dryRun } = parse(trimRequestSchema, request.body ?? {}, 'trim request');
    return coordinator.trim(partition, { dryRun });
  });
  app.post('/v1/partitions/:p/snapshot-requests', async (request, reply) => {
    const partition = await partitionOf(request);
    const { minLsn } = parse(snapshotRequestSchema, request.body, 'snapshot request');
    return reply.code(202).send({ request: coordinator.requestSnapshot(partition, minLsn) });
  });
  // A copy: registering these fires onRoute again.
  for (const [url, methods] of [...allowed].map(([u, m]) => [u, [...m]] as const)) {
    const allow = methods.join(', ');
    app.route({
      method: ROUTE_METHODS.filter((m) => !methods.includes(m)),
      url,
      exposeHeadRoute: false,
      handler: async (request, reply) => reply.code(405).header('allow', allow).send({ error: { code: 'BAD_INPUT', message: `${request.method} is not allowed on ${url}; use ${allow}` } }),
    });
  }
  return app;
}

const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
