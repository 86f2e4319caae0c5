import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKeysService } from '../../auth/api-keys.service.js';
import { AppError } from '../../errors.js';
import type { Metrics } from '../../telemetry/metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Counted in http_server_active_requests (decremented once, on response or abort). */
    inFlight: boolean;
  }
}

export interface HttpMetricsOptions {
  metrics: Metrics;
  apiKeys: ApiKeysService;
  /** A bearer token that may read /metrics besides an admin key. */
  metricsToken: string | undefined;
}

const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();

/**
 * Times every request into http_server_request_duration_seconds (route template, never the raw
 * URL; a request no route matched counts as `unmatched`) and serves GET /metrics, which needs an
 * admin key or METRICS_TOKEN: a scrape shows every route and task this process serves.
 */
export function registerHttpMetrics(app: FastifyInstance, opts: HttpMetricsOptions): void {
  const { metrics } = opts;
  const tokenDigest = opts.metricsToken ? digest(opts.metricsToken) : undefined;
  app.decorateRequest('inFlight', false);
  const leave = (request: FastifyRequest) => {
    if (!request.inFlight) return;
    request.inFlight = false;
    metrics.httpRequestEnded();
  };
  app.addHook('onRequest', (request, _reply, done) => {
    request.inFlight = true;
    metrics.httpRequestStarted();
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    leave(request);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    leave(request);
    metrics.httpRequest(
      request.method,
      request.is404 ? undefined : request.routeOptions.url,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });

  /** Throws 401 without a known key or the token, 403 for a key below admin. */
  const authorize = async (request: FastifyRequest): Promise<void> => {
    const bearer = /^Bearer\s+(\S{1,512})\s*$/i.exec(request.headers.authorization ?? '')?.[1];
    if (!bearer)
      throw new AppError('UNAUTHENTICATED', 'send Authorization: Bearer <admin api key or METRICS_TOKEN>');
    if (tokenDigest && timingSafeEqual(digest(bearer), tokenDigest)) return;
    const principal = await opts.apiKeys.verify(bearer);
    if (!principal) throw new AppError('UNAUTHENTICATED', 'API key is unknown or revoked');
    if (principal.role !== 'admin')
      throw new AppError('FORBIDDEN', '/metrics needs an admin key or METRICS_TOKEN', {
        required: 'admin',
        role: principal.role,
      });
  };
  app.get('/metrics', { config: { auth: 'public' }, schema: { hide: true } }, async (request, reply) => {
    await authorize(request);
    const out = await metrics.expose(request.headers.accept);
    return reply.header('content-type', out.contentType).header('cache-control', 'no-store').send(out.body);
  });
}
