/**
 * One server span per request, named by its route template, continuing a valid incoming
 * `traceparent`; the trace id goes back in `X-Trace-Id`. Registered first, so every later hook, the
 * handler, the `request completed` log line and the request metrics run inside the span's context
 * (their log lines carry its ids; the latency histogram's exemplar its trace id). Probes and
 * scrapes (/health, /ready, /metrics) are never traced.
 *
 * One span per request, not one per hook: the cost at 100 % sampling is one span, whatever the
 * route's plugins (bench:observability holds it to 0.80 of untraced requests/s).
 */
import type { FastifyInstance } from 'fastify';
import type { HttpSpan, Tracing } from '../../telemetry/tracing.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's span and context (tracing on; null for untraced routes). */
    traceSpan: HttpSpan | null;
  }
}

/** Routes never traced: liveness and readiness probes and metric scrapes. */
export const UNTRACED_ROUTES: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics']);

export const TRACE_ID_HEADER = 'x-trace-id';

export function registerHttpTracing(app: FastifyInstance, tracing: Tracing): void {
  app.decorateRequest('traceSpan', null);
  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url;
    if (route !== undefined && UNTRACED_ROUTES.has(route)) return done();
    const t = tracing.startHttp(request.method, route, request.url, request.headers);
    request.traceSpan = t;
    reply.header(TRACE_ID_HEADER, t.traceId);
    tracing.runIn(t.context, done);
  });
  // A body is read from socket events, outside the span's context: the handler goes back into it.
  app.addHook('preHandler', (request, _reply, done) => {
    if (request.traceSpan) tracing.runIn(request.traceSpan.context, done);
    else done();
  });
  app.addHook('onError', (request, _reply, error, done) => {
    if (request.traceSpan) tracing.httpError(request.traceSpan.span, error);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const t = request.traceSpan;
    if (!t) return done();
    if (!t.ended) {
      t.ended = true;
      tracing.endHttp(t.span, reply.statusCode);
    }
    // The rest of the response's hooks (metrics) and its log line run in the span's context.
    tracing.runIn(t.context, done);
  });
  app.addHook('onRequestAbort', (request, done) => {
    const t = request.traceSpan;
    if (t && !t.ended) {
      t.ended = true;
      tracing.abortHttp(t.span);
    }
    done();
  });
}
