/**
 * Slow clients cannot hold the server's connections: a request must arrive whole within
 * HTTP_REQUEST_TIMEOUT_MS (headers within HTTP_HEADERS_TIMEOUT_MS), a silent connection is
 * closed after HTTP_IDLE_TIMEOUT_MS, and a request refused while its body is still coming
 * (a 401 before a 100,000-byte body trickles in) gets `Connection: close` and its socket ends
 * once the answer is written, instead of the server reading the rest.
 */
import type { Server, ServerOptions } from 'node:http';
import type { FastifyHttpOptions, FastifyInstance } from 'fastify';
import type { HttpConfig } from '../../config/http.js';

/** How often Node checks every connection against the request and header time-outs, ms (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1000;

export function serverTimeouts(
  http: HttpConfig,
): Pick<FastifyHttpOptions<Server>, 'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout' | 'http'> {
  const options: ServerOptions = {
    headersTimeout: http.headersTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  };
  return {
    requestTimeout: http.requestTimeoutMs,
    connectionTimeout: http.idleTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    http: options,
  };
}

export function registerCloseOnRefusedBody(app: FastifyInstance): void {
  app.addHook('onSend', (request, reply, payload, done) => {
    if (reply.statusCode >= 400 && !request.raw.complete) reply.header('connection', 'close');
    done(null, payload);
  });
}
