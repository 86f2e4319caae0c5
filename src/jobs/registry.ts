/**
 * The task registry. Every task lives in its own file under `src/tasks/` and is
 * declared with `defineTask`:
 *
 * ```ts
 * export const renderVideoTask = defineTask({
 *   name: 'video.render',                 // unique, `<area>.<verb>`
 *   queue: 'default',                     // high_priority | default | low_priority
 *   payload: Type.Object({ renderId: Type.Integer({ minimum: 1 }) }),   // TypeBox schema
 *   retry: { attempts: 3, backoff: { baseMs: 5000 } },  // capped at 600 s, jittered
 *   softTimeoutMs: 10 * 60_000,           // ctx.signal aborts; the handler should stop
 *   hardTimeoutMs: 11 * 60_000,           // the runner gives up (sandboxed: kills the child)
 *   sandboxed: true,                      // run in a recycled child process (CPU-heavy, native code)
 *   async handler(payload, ctx) { ...; await ctx.progress(50); return { ok: true }; },
 * });
 * ```
 *
 * then add it to the list in `src/tasks/index.ts`. The runner validates the payload
 * against the schema before the handler runs (an invalid payload fails once,
 * never retried). A handler throws `PermanentError` to give up, `RetryAfterError`
 * to retry after an explicit delay; any other error is retried with back-off.
 * Handlers receive their dependencies through `ctx.deps` (see TaskDeps).
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { Logger } from 'pino';
import { DEFAULT_BACKOFF, resolveBackoff } from './backoff.js';
import { InvalidPayloadError } from './errors.js';
import {
  type BackoffOptions,
  DEFAULT_JOB_PRIORITY,
  type EnqueueOptions,
  type EnqueueRequest,
  isQueueName,
  MAX_JOB_PRIORITY,
  MIN_JOB_PRIORITY,
  type QueueName,
} from './types.js';

/** What a handler gets besides its payload. */
export interface TaskContext<D = unknown> {
  jobId: string;
  /** 1 for the first attempt. */
  attempt: number;
  maxAttempts: number;
  /** Aborts at the soft timeout, on cancel, and on an immediate shutdown. */
  signal: AbortSignal;
  /** Reports progress 0..100 (streamed to API clients over SSE). */
  progress(value: number): Promise<void>;
  logger: Logger;
  /** Dependencies built by the process's composition root (main process or sandbox child). */
  deps: D;
}

export interface RetryPolicy {
  /** Total attempts including the first (default 3). */
  attempts: number;
  backoff?: Partial<BackoffOptions>;
}

export interface TaskDefinition<S extends TSchema = TSchema, R = unknown, D = unknown> {
  readonly name: string;
  readonly queue: QueueName;
  readonly payload: S;
  readonly retry?: RetryPolicy;
  /** The handler's signal aborts after this, ms (default none). */
  readonly softTimeoutMs?: number;
  /** The attempt fails after this; a sandboxed child is killed, ms (default none; must exceed the soft timeout). */
  readonly hardTimeoutMs?: number;
  /**
   * Timeouts that follow the payload (a render's follow the length of what it renders); when present
   * they replace softTimeoutMs and hardTimeoutMs. Pure: called by the worker before each attempt.
   */
  timeouts?(payload: Static<S>): TaskTimeouts;
  /** Run in a child process (recycled after --max-tasks-per-child tasks or --max-memory-per-child MB). */
  readonly sandboxed?: boolean;
  /** Short description for `omnivibe tasks` and the docs. */
  readonly description?: string;
  handler(payload: Static<S>, ctx: TaskContext<D>): Promise<R>;
}

export interface TaskTimeouts {
  softTimeoutMs: number;
  hardTimeoutMs: number;
}

/** Declares a task; the object is returned as is, typed. */
export function defineTask<S extends TSchema, R, D = unknown>(
  def: TaskDefinition<S, R, D>,
): TaskDefinition<S, R, D> {
  return def;
}

export const DEFAULT_ATTEMPTS = 3;

/** Any declared task, whatever its payload, result and deps types. */
export type AnyTaskDefinition = TaskDefinition<TSchema, unknown, never>;

/** A task with its compiled payload validator. */
export interface RegisteredTask {
  readonly def: TaskDefinition<TSchema, unknown, unknown>;
  readonly check: TypeCheck<TSchema>;
}

export class TaskRegistry {
  private readonly tasks = new Map<string, RegisteredTask>();

  constructor(defs: readonly AnyTaskDefinition[] = []) {
    for (const d of defs) this.register(d);
  }

  register(def: AnyTaskDefinition): void {
    if (this.tasks.has(def.name)) throw new Error(`task ${def.name} is registered twice`);
    if (!isQueueName(def.queue)) throw new Error(`task ${def.name}: unknown queue ${String(def.queue)}`);
    if (
      def.hardTimeoutMs !== undefined &&
      def.softTimeoutMs !== undefined &&
      def.hardTimeoutMs <= def.softTimeoutMs
    )
      throw new Error(`task ${def.name}: hardTimeoutMs must exceed softTimeoutMs`);
    // A sandboxed task may hang in native code or a process of its own: only a kill ends it.
    if (def.sandboxed && def.hardTimeoutMs === undefined && !def.timeouts)
      throw new Error(`task ${def.name}: a sandboxed task needs a hard timeout (hardTimeoutMs or timeouts)`);
    this.tasks.set(def.name, {
      def: def as unknown as TaskDefinition<TSchema, unknown, unknown>,
      check: TypeCompiler.Compile(def.payload),
    });
  }

  get(name: string): RegisteredTask | undefined {
    return this.tasks.get(name);
  }

  names(): string[] {
    return [...this.tasks.keys()].sort();
  }

  /** Throws InvalidPayloadError naming the first problems. */
  validate(name: string, payload: unknown): void {
    const t = this.tasks.get(name);
    if (!t) throw new InvalidPayloadError(`no task named ${name}`, [`name: unknown task ${name}`]);
    if (t.check.Check(payload)) return;
    const issues = [...t.check.Errors(payload)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
    throw new InvalidPayloadError(`invalid payload for ${name}: ${issues.join('; ')}`, issues);
  }

  /** Resolves enqueue options against the task's declaration (queue, attempts, back-off). */
  request(name: string, payload: unknown, opts: EnqueueOptions = {}): EnqueueRequest {
    const t = this.tasks.get(name);
    if (!t) throw new Error(`no task named ${name} is registered`);
    const priority = opts.priority ?? DEFAULT_JOB_PRIORITY;
    if (!Number.isInteger(priority) || priority < MIN_JOB_PRIORITY || priority > MAX_JOB_PRIORITY)
      throw new RangeError(`priority must be an integer from ${MIN_JOB_PRIORITY} to ${MAX_JOB_PRIORITY}`);
    const attempts = opts.attempts ?? t.def.retry?.attempts ?? DEFAULT_ATTEMPTS;
    if (!Number.isInteger(attempts) || attempts < 1)
      throw new RangeError('attempts must be a positive integer');
    return {
      name,
      queue: opts.queue ?? t.def.queue,
      payload,
      delayMs: Math.max(0, Math.trunc(opts.delayMs ?? 0)),
      idempotencyKey: opts.idempotencyKey ?? null,
      attempts,
      backoff: resolveBackoff(opts.backoff, resolveBackoff(t.def.retry?.backoff, DEFAULT_BACKOFF)),
      priority,
    };
  }
}
