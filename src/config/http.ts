import { z } from 'zod';
import { intVar, parseEnv } from './env.js';

/**
 * What one client may hold of the HTTP server: time-outs for slow requests and idle connections,
 * live event streams, and failed authentications per address.
 */
export interface HttpConfig {
  /** Longest a client may take to send a whole request, headers and body, ms (HTTP_REQUEST_TIMEOUT_MS, 30000); 408 and closed past it. */
  readonly requestTimeoutMs: number;
  /** Longest a client may take to send the request headers, ms (HTTP_HEADERS_TIMEOUT_MS, 10000). */
  readonly headersTimeoutMs: number;
  /** A connection with no traffic either way for this long is closed, ms (HTTP_IDLE_TIMEOUT_MS, 60000); above the 15 s event-stream heartbeat. */
  readonly idleTimeoutMs: number;
  /** How long an idle keep-alive connection waits for the next request, ms (HTTP_KEEP_ALIVE_TIMEOUT_MS, 5000). */
  readonly keepAliveTimeoutMs: number;
  /** Open /tasks/{id}/events streams per API key (EVENT_STREAMS_PER_KEY, 20); 429 past it. */
  readonly eventStreamsPerKey: number;
  /** Open event streams in one API process (EVENT_STREAMS_MAX, 2000); 429 past it. */
  readonly eventStreamsMax: number;
  /** Longest one event stream stays open before the client reconnects with Last-Event-ID, ms (EVENT_STREAM_LIFETIME_S, 300, in seconds). */
  readonly eventStreamLifetimeMs: number;
  /** How often an event stream's task is read for changes made by other processes, ms (EVENT_STREAM_POLL_MS, 200). */
  readonly eventStreamPollMs: number;
  /** Failed authentications (401) one client address may have per minute before it gets 429 without a key lookup (AUTH_FAILURES_PER_MIN, 30). */
  readonly authFailuresPerMin: number;
}

const schema = z.object({
  HTTP_REQUEST_TIMEOUT_MS: intVar(1000, 3_600_000, 30_000),
  HTTP_HEADERS_TIMEOUT_MS: intVar(1000, 600_000, 10_000),
  HTTP_IDLE_TIMEOUT_MS: intVar(16_000, 3_600_000, 60_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: intVar(1000, 600_000, 5_000),
  EVENT_STREAMS_PER_KEY: intVar(1, 100_000, 20),
  EVENT_STREAMS_MAX: intVar(1, 1_000_000, 2_000),
  EVENT_STREAM_LIFETIME_S: intVar(1, 86_400, 300),
  EVENT_STREAM_POLL_MS: intVar(10, 60_000, 200),
  AUTH_FAILURES_PER_MIN: intVar(1, 1_000_000, 30),
});

export function loadHttpConfig(env: NodeJS.ProcessEnv): HttpConfig {
  const e = parseEnv(schema, env);
  return Object.freeze({
    requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    headersTimeoutMs: Math.min(e.HTTP_HEADERS_TIMEOUT_MS, e.HTTP_REQUEST_TIMEOUT_MS),
    idleTimeoutMs: e.HTTP_IDLE_TIMEOUT_MS,
    keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    eventStreamsPerKey: e.EVENT_STREAMS_PER_KEY,
    eventStreamsMax: e.EVENT_STREAMS_MAX,
    eventStreamLifetimeMs: e.EVENT_STREAM_LIFETIME_S * 1000,
    eventStreamPollMs: e.EVENT_STREAM_POLL_MS,
    authFailuresPerMin: e.AUTH_FAILURES_PER_MIN,
  });
}
