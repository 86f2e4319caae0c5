/**
 * Traces: the span vocabulary of OmniVibe Pro and the tracing hooks each layer takes (see
 * docs/observability.md, "Traces", for every span). Built over `@opentelemetry/api` alone: the
 * composition roots start the SDK (src/main/tracing.ts) and hand a Tracing to what they build.
 * With tracing off there is no Tracing and no hook at all.
 *
 * Spans of work that only makes sense inside an operation (database statements, Redis commands,
 * cache reads, vendor calls) are made only when a recording span is active: a statement run by a
 * timer (the live figures, housekeeping) or BullMQ's polling never starts a trace of its own.
 */
import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
  TraceFlags,
  type Tracer,
} from '@opentelemetry/api';
import type { ReadTracer } from '../cache/cache.service.js';
import type { QueryEvent } from '../db/database.js';
import type { Dialect } from '../db/types.js';
import type { ClaimedJob, EnqueueRequest, JobSpans, Settlement } from '../jobs/types.js';
import type { MediaSpans, VendorCall } from '../media/media-observer.js';
import { dbOperation } from './db-metrics.js';

/** Span names: a closed set of kinds, each followed by what it is about (a route, a task, a command). */
export type SpanName =
  | `${string} /${string}`
  | `HTTP ${string}`
  | `db ${'select' | 'insert' | 'update' | 'delete' | 'other'}`
  | `redis ${string}`
  | `cache ${string}`
  | `enqueue ${string}`
  | `process ${string}`
  | `run ${string}`
  | `${'tts' | 'stt'} ${string}`
  | 'narration.attempt'
  | 'render.ffmpeg'
  | 'audio.batch.item';

/**
 * Attribute keys: OpenTelemetry's semantic conventions where one exists, `omnivibe.*` for ours. Spans
 * made per request or per attempt carry few: each string is encoded again in every exported span,
 * and that encoding is most of what a span costs (what the span's name and kind say is not repeated).
 */
export type SpanAttribute =
  | 'http.request.method'
  | 'http.route'
  | 'http.response.status_code'
  | 'url.path'
  | 'error.type'
  | 'db.system.name'
  | 'db.operation.name'
  | 'db.query.text'
  | 'db.namespace'
  | 'server.address'
  | 'server.port'
  | 'messaging.destination.name'
  | 'messaging.message.id'
  | 'messaging.batch.message_count'
  | 'omnivibe.task'
  | 'omnivibe.job.attempt'
  | 'omnivibe.job.outcome'
  | 'omnivibe.job.retry_in_ms'
  | 'omnivibe.cache.prefix'
  | 'omnivibe.cache.hit'
  | 'omnivibe.vendor.provider'
  | 'omnivibe.vendor.model'
  | 'omnivibe.vendor.operation'
  | 'omnivibe.vendor.outcome'
  | 'omnivibe.vendor.units'
  | 'omnivibe.vendor.unit'
  | 'omnivibe.vendor.cost_usd'
  | 'omnivibe.narration.generation_id'
  | 'omnivibe.narration.provider'
  | 'omnivibe.narration.attempt'
  | 'omnivibe.narration.max_attempts'
  | 'omnivibe.narration.score'
  | 'omnivibe.narration.similarity'
  | 'omnivibe.render.id'
  | 'omnivibe.render.preset'
  | 'omnivibe.render.quality'
  | 'omnivibe.render.duration_s'
  | 'omnivibe.content_id';

export type SpanAttributes = Partial<Record<SpanAttribute, string | number | boolean>>;

interface SpanOptions {
  kind?: SpanKind;
  links?: Link[];
  /** Start a new trace (ignoring the active span), e.g. linked to it instead. */
  root?: boolean;
}

/** The context a job carries, `<traceparent>`, with this suffix when its attempts link to it instead of continuing it. */
const LINK_SUFFIX = ';link';

/** Attempts end with their settlement; an attempt without one lost its lease. */
function outcomeOf(s: Settlement | undefined): { outcome: string; error?: string; retryInMs?: number } {
  if (!s) return { outcome: 'lost', error: 'the worker lost the lease of this job' };
  switch (s.kind) {
    case 'complete':
      return { outcome: 'completed' };
    case 'cancel':
      return { outcome: 'cancelled' };
    case 'release':
      return { outcome: 'released' };
    case 'fail':
      return 'retryAt' in s.outcome
        ? { outcome: 'retrying', error: s.error, retryInMs: Math.max(0, s.outcome.retryAt - Date.now()) }
        : { outcome: 'failed', error: s.error };
  }
}

const errorName = (err: unknown) => (err instanceof Error ? err.name : typeof err);

/** Marks a span failed with the error (its type, message and stack as an exception event). */
function fail(span: Span, err: unknown): void {
  span.setAttribute('error.type', errorName(err));
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** Pino's mixin: the ids of the active span on every line logged inside one (with tracing on). */
export function traceLogFields(): Record<string, string | undefined> {
  const sc = trace.getSpan(context.active())?.spanContext();
  return sc && isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

export interface HttpSpan {
  readonly span: Span;
  /** The context the request's hooks and handler run in. */
  readonly context: Context;
  readonly traceId: string;
  /** Set once the span is ended (the response was sent, or the client went away). */
  ended: boolean;
}

export class Tracing {
  /** The last `traceparent` a job carried and its context: a bulk enqueue's jobs all carry the same one. */
  private carried: { traceparent: string; context: Context } | undefined;

  constructor(
    private readonly tracer: Tracer,
    /** W3C trace context: incoming `traceparent` headers, and the context a job carries. */
    private readonly propagator: TextMapPropagator,
    /**
     * The sampler follows the parent's decision (parentbased_*): a child of a span that is not
     * recorded is not recorded either, so no span is started for it at all (see `attempt`).
     */
    private readonly followsParent = false,
  ) {}

  /** The active span when it records: a traced operation is in progress. */
  private recording(): Span | undefined {
    const span = trace.getSpan(context.active());
    return span?.isRecording() ? span : undefined;
  }

  /** Runs `run` inside a new span (a child of the active one unless `root`), ended when `run` settles. */
  withSpan<T>(
    name: SpanName,
    attributes: SpanAttributes,
    run: (span: Span) => Promise<T>,
    opts: SpanOptions = {},
  ): Promise<T> {
    return this.tracer.startActiveSpan(
      name,
      { kind: opts.kind ?? SpanKind.INTERNAL, attributes, links: opts.links, root: opts.root },
      async (span) => {
        try {
          return await run(span);
        } catch (err) {
          fail(span, err);
          throw err;
        } finally {
          span.end();
        }
      },
    );
  }

  /** A finished child of the active span for something its caller timed; nothing outside a traced operation. */
  private recordChild(
    name: SpanName,
    kind: SpanKind,
    startMs: number,
    endMs: number,
    attributes: SpanAttributes,
    error?: string,
  ): void {
    if (!this.recording()) return;
    const span = this.tracer.startSpan(name, { kind, startTime: startMs, attributes }, context.active());
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end(endMs);
  }

  /** Starts a client span (a Redis command) as a child of the active span; none outside a traced operation. */
  startClientSpan(name: SpanName, attributes: SpanAttributes): Span | undefined {
    if (!this.recording()) return undefined;
    return this.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, context.active());
  }

  /** The active span's trace id when it is sampled (histogram exemplars point at traces that exist). */
  sampledTraceId(): string | undefined {
    const sc = trace.getSpan(context.active())?.spanContext();
    return sc && sc.traceFlags & TraceFlags.SAMPLED && isSpanContextValid(sc) ? sc.traceId : undefined;
  }

  /** `traceparent` of a span context. */
  private carrier(sc: SpanContext): string | undefined {
    const out: Record<string, string> = {};
    this.propagator.inject(trace.setSpanContext(ROOT_CONTEXT, sc), out, defaultTextMapSetter);
    return out.traceparent;
  }

  /** The remote parent context of a `traceparent`, or the root context when it is missing or invalid. */
  private continueFrom(traceparent: string | undefined): Context {
    if (!traceparent) return ROOT_CONTEXT;
    if (this.carried?.traceparent === traceparent) return this.carried.context;
    const ctx = this.propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
    this.carried = { traceparent, context: ctx };
    return ctx;
  }

  // ------------------------------------------------------------------ HTTP

  /**
   * The server span of a request: a child of a valid incoming `traceparent`, else a new trace. Named
   * by the route template (`GET /api/v1/campaigns/:id`); a request no route matched is `HTTP GET`.
   * Its attributes are made only when it records (`url` is the request's URL, query included).
   */
  startHttp(
    method: string,
    route: string | undefined,
    url: string,
    headers: Record<string, string | string[] | undefined>,
  ): HttpSpan {
    const parent = this.propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const span = this.tracer.startSpan(
      route ? `${method} ${route}` : `HTTP ${method}`,
      { kind: SpanKind.SERVER },
      parent,
    );
    if (span.isRecording()) {
      const query = url.indexOf('?');
      span.setAttributes({
        'http.request.method': method,
        'url.path': query < 0 ? url : url.slice(0, query),
        ...(route ? { 'http.route': route } : {}),
      } satisfies SpanAttributes);
    }
    return { span, context: trace.setSpan(parent, span), traceId: span.spanContext().traceId, ended: false };
  }

  /** Ends a request's span with its status (5xx: an error). */
  endHttp(span: Span, status: number): void {
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) {
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }

  /** Ends the span of a request its client gave up on before the answer. */
  abortHttp(span: Span): void {
    span.setAttribute('error.type', 'request_aborted');
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection' });
    span.end();
  }

  /** The error a request failed with, on its span (an exception event). */
  httpError(span: Span, err: Error): void {
    span.recordException(err);
  }

  /** Runs `fn` in `ctx` (the rest of a request's hooks and its handler). */
  runIn<T>(ctx: Context, fn: () => T): T {
    return context.with(ctx, fn);
  }

  // ------------------------------------------------------------------ jobs

  /**
   * The job system's hooks. An enqueue is a producer span; each attempt a consumer span in the same
   * trace, in whatever process claims it, and each sandboxed attempt a span in the child under it.
   * Fan-out (a bulk enqueue of several jobs) and scheduled jobs (a delay) are linked instead: each
   * attempt starts a trace of its own with a link to the producer, so no trace grows without bound.
   */
  jobs(): JobSpans {
    return {
      enqueue: (reqs, send) => {
        const first = reqs[0] as EnqueueRequest;
        const bulk = reqs.length > 1;
        return this.withSpan(
          `enqueue ${bulk && reqs.some((r) => r.name !== first.name) ? 'batch' : first.name}`,
          {
            'messaging.destination.name': first.queue,
            ...(bulk ? { 'messaging.batch.message_count': reqs.length } : {}),
          },
          async (span) => {
            const tp = this.carrier(span.spanContext());
            const stamped = reqs.map((r) =>
              tp === undefined ? r : { ...r, trace: bulk || r.delayMs > 0 ? `${tp}${LINK_SUFFIX}` : tp },
            );
            const results = await send(stamped);
            if (results.length === 1) span.setAttribute('messaging.message.id', results[0]?.id ?? '');
            return results;
          },
          { kind: SpanKind.PRODUCER },
        );
      },
      attempt: (job, run) => this.attempt(job, run),
      current: () => {
        const sc = trace.getSpan(context.active())?.spanContext();
        return sc && isSpanContextValid(sc) ? this.carrier(sc) : undefined;
      },
      sandboxed: (task, carried, run) => this.sandboxed(task, carried, run),
    };
  }

  /** In a sandbox child: runs a task in a span continuing the worker's attempt span (`carried`). */
  sandboxed<T>(
    task: { id: string; name: string; attempt: number },
    carried: string | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    return context.with(this.continueFrom(carried), () =>
      this.withSpan(
        `run ${task.name}`,
        { 'messaging.message.id': task.id, 'omnivibe.job.attempt': task.attempt },
        () => run(),
      ),
    );
  }

  /**
   * An attempt's consumer span. One that is not sampled costs only the sampler's decision and the
   * context its children read (a task's own enqueues carry the decision on): no attributes, no link,
   * no wrapper around the attempt; and when the sampler follows a parent that is not sampled, not even
   * a span (the attempt runs in the parent's context).
   */
  private attempt(
    job: ClaimedJob,
    run: () => Promise<Settlement | undefined>,
  ): Promise<Settlement | undefined> {
    const linked = job.trace?.endsWith(LINK_SUFFIX) ?? false;
    const from = this.continueFrom(linked ? job.trace?.slice(0, -LINK_SUFFIX.length) : job.trace);
    const producer = trace.getSpanContext(from);
    if (!linked && this.followsParent && producer && !(producer.traceFlags & TraceFlags.SAMPLED))
      return context.with(from, run);
    const parent = linked ? ROOT_CONTEXT : from;
    const span = this.tracer.startSpan(`process ${job.name}`, { kind: SpanKind.CONSUMER }, parent);
    const ctx = trace.setSpan(parent, span);
    if (!span.isRecording()) return context.with(ctx, run);
    span.setAttributes({
      'messaging.destination.name': job.queue,
      'messaging.message.id': job.id,
      'omnivibe.job.attempt': job.attempt,
    } satisfies SpanAttributes);
    if (linked && producer) span.addLink({ context: producer });
    return context.with(ctx, async () => {
      try {
        const settlement = await run();
        const o = outcomeOf(settlement);
        span.setAttribute('omnivibe.job.outcome', o.outcome);
        if (o.retryInMs !== undefined) span.setAttribute('omnivibe.job.retry_in_ms', o.retryInMs);
        if (o.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: o.error });
        return settlement;
      } catch (err) {
        fail(span, err);
        throw err;
      } finally {
        span.end();
      }
    });
  }

  // ------------------------------------------------------------------ database and cache

  /** The database's `onQuery` hook: a span per statement (its SQL, never its parameters) inside a traced operation. */
  dbQueries(dialect: Dialect): (q: QueryEvent) => void {
    const system = dialect === 'postgres' ? 'postgresql' : 'sqlite';
    return (q) => {
      if (!this.recording()) return;
      const end = Date.now();
      const operation = dbOperation(q.sql);
      this.recordChild(
        `db ${operation}`,
        SpanKind.CLIENT,
        end - q.durationMs,
        end,
        { 'db.system.name': system, 'db.operation.name': operation, 'db.query.text': q.sql },
        q.failed ? 'the statement failed' : undefined,
      );
    };
  }

  /** The cache's read hook: a span per read-through inside a traced operation, with `omnivibe.cache.hit`. */
  cacheReads(): ReadTracer {
    const noMiss = () => undefined;
    return <T>(prefix: string, read: (miss: () => void) => Promise<T>): Promise<T> => {
      if (!this.recording()) return read(noMiss);
      return this.withSpan(`cache ${prefix}`, { 'omnivibe.cache.prefix': prefix }, async (span) => {
        let hit = true;
        const value = await read(() => {
          hit = false;
        });
        span.setAttribute('omnivibe.cache.hit', hit);
        return value;
      });
    };
  }

  // ------------------------------------------------------------------ media

  /** Spans of the media pipeline: each narration attempt, vendor call and render. */
  media(): MediaSpans {
    return {
      narrationAttempt: (a, run) =>
        this.withSpan(
          'narration.attempt',
          {
            'omnivibe.narration.generation_id': a.generationId,
            'omnivibe.narration.provider': a.provider,
            'omnivibe.narration.attempt': a.attempt,
            'omnivibe.narration.max_attempts': a.maxAttempts,
          },
          (span) =>
            run((v) => {
              const verdict: Attributes = { 'omnivibe.narration.score': v.score };
              if (v.similarity !== null) verdict['omnivibe.narration.similarity'] = v.similarity;
              span.setAttributes(verdict);
            }),
        ),
      render: (r, run) =>
        this.withSpan(
          'render.ffmpeg',
          {
            'omnivibe.render.id': r.renderId,
            'omnivibe.render.preset': r.preset,
            'omnivibe.render.quality': r.quality,
            'omnivibe.render.duration_s': r.durationS,
          },
          () => run(),
        ),
      vendorCall: (c: VendorCall) => {
        const end = Date.now();
        this.recordChild(
          `${c.operation === 'stt' ? 'stt' : 'tts'} ${c.provider}`,
          SpanKind.CLIENT,
          c.startedAt ?? end - c.latencyS * 1000,
          (c.startedAt ?? end - c.latencyS * 1000) + c.latencyS * 1000,
          {
            'omnivibe.vendor.provider': c.provider,
            'omnivibe.vendor.model': c.model ?? 'none',
            'omnivibe.vendor.operation': c.operation,
            'omnivibe.vendor.outcome': c.outcome,
            'omnivibe.vendor.units': c.units,
            'omnivibe.vendor.unit': c.unit,
            'omnivibe.vendor.cost_usd': c.costUsd,
          },
          c.outcome === 'error' ? 'the vendor call failed' : undefined,
        );
      },
      fanOutItem: (item, run) => {
        const parent = trace.getSpan(context.active())?.spanContext();
        return this.withSpan(
          'audio.batch.item',
          { 'omnivibe.task': item.task, 'omnivibe.content_id': item.contentId },
          () => run(),
          { root: true, ...(parent && isSpanContextValid(parent) ? { links: [{ context: parent }] } : {}) },
        );
      },
    };
  }
}
