/**
 * Redis command spans from ioredis's own diagnostics channels (`ioredis:command`, `ioredis:batch`),
 * for every ioredis client of the process (the cache, the rate limiter, BullMQ's connections). A
 * command gets a span only when it is sent inside a traced operation: BullMQ's polling and the
 * cache's bus never start a trace.
 */
import diagnostics from 'node:diagnostics_channel';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { Tracing } from './tracing.js';

/** What ioredis publishes for a command (arguments already sanitised: values of writes are `?`). */
interface CommandMessage {
  command?: string;
  database?: number;
  serverAddress?: string;
  serverPort?: number;
  batchMode?: string;
  batchSize?: number;
  error?: unknown;
}

const SPAN = Symbol('span');
type Traced = CommandMessage & { [SPAN]?: Span };

/** Subscribes to ioredis's channels; returns the unsubscribe. */
export function traceRedisCommands(tracing: Tracing): () => void {
  const handlers = (batch: boolean) => ({
    start(message: unknown) {
      const m = message as Traced;
      const name = batch ? `MULTI (${m.batchSize ?? 0})` : (m.command ?? 'unknown').toUpperCase();
      const span = tracing.startClientSpan(`redis ${name}`, {
        'db.system.name': 'redis',
        'db.operation.name': batch ? 'MULTI' : name,
        'db.namespace': String(m.database ?? 0),
        ...(m.serverAddress ? { 'server.address': m.serverAddress } : {}),
        ...(m.serverPort ? { 'server.port': m.serverPort } : {}),
      });
      if (span) m[SPAN] = span;
    },
    error(message: unknown) {
      const m = message as Traced;
      const err = m.error;
      m[SPAN]?.setStatus({
        code: SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
    },
    asyncEnd(message: unknown) {
      (message as Traced)[SPAN]?.end();
    },
    // The synchronous part's end and the reply's arrival: the span ends after the reply (asyncEnd).
    end: () => undefined,
    asyncStart: () => undefined,
  });
  const channels = [
    [diagnostics.tracingChannel('ioredis:command'), handlers(false)],
    [diagnostics.tracingChannel('ioredis:batch'), handlers(true)],
  ] as const;
  for (const [channel, h] of channels) channel.subscribe(h);
  return () => {
    for (const [channel, h] of channels) channel.unsubscribe(h);
  };
}
