/**
 * Live task events (GET /api/v1/tasks/{id}/events, server-sent events), bounded:
 *
 * - One source of events per task, however many streams watch it: a TaskWatch reads the task
 *   every `pollMs` (other processes' workers) and at once when this process's queue reports
 *   progress, completion or failure, and hands each change to every stream of that task. The
 *   hub holds one set of queue listeners in all, not three per stream.
 * - At most `maxPerKey` open streams per API key and `maxTotal` in the process; past either the
 *   request is a 429 (RATE_LIMITED with Retry-After) before anything is read.
 * - Each stream lives at most `maxLifetimeMs`, then ends; the client reconnects (EventSource
 *   does so by itself after `retry` ms) with `Last-Event-ID`, and the new stream skips the
 *   `progress` event that the client has already seen.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../errors.js';
import { FINISHED_STATES, type Job, type JobAdmin } from '../jobs/types.js';
import { SSE_HEADERS } from './event-stream.js';

export interface TaskEventLimits {
  /** Open streams one API key may hold. */
  readonly maxPerKey: number;
  /** Open streams in this process. */
  readonly maxTotal: number;
  /** How long one stream stays open before the client must reconnect, ms. */
  readonly maxLifetimeMs: number;
}

/** What a watch hands its streams: the task as read now (undefined once it is gone), or a read error. */
type TaskUpdate = { job: Job | undefined } | { error: unknown };
type Listener = (update: TaskUpdate) => void;

/** The one reader of a task while at least one stream watches it. */
class TaskWatch {
  readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private wakeRequested = false;

  constructor(
    private readonly id: string,
    private readonly queue: JobAdmin,
    private readonly pollMs: number,
  ) {}

  /** Reads now (or right after the read in flight). */
  wake(): void {
    if (this.reading) {
      this.wakeRequested = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), 0);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  private async tick(): Promise<void> {
    this.reading = true;
    let update: TaskUpdate;
    try {
      update = { job: (await this.queue.get(this.id)) ?? undefined };
    } catch (error) {
      update = { error };
    }
    this.reading = false;
    for (const listener of [...this.listeners]) listener(update);
    if (this.listeners.size === 0) return;
    const delay = this.wakeRequested ? 0 : this.pollMs;
    this.wakeRequested = false;
    this.timer = setTimeout(() => void this.tick(), delay);
  }
}

export class TaskEventHub {
  private readonly watches = new Map<string, TaskWatch>();
  private readonly openByKey = new Map<number, number>();
  private open = 0;
  private readonly wake = (id: string) => this.watches.get(id)?.wake();

  constructor(
    private readonly queue: JobAdmin,
    readonly limits: TaskEventLimits,
    private readonly pollMs: number,
  ) {
    queue.on('progress', this.wake);
    queue.on('completed', this.wake);
    queue.on('failed', this.wake);
  }

  /** Takes a stream slot for `keyId`, or throws RATE_LIMITED; the returned function gives it back (once). */
  acquire(keyId: number): () => void {
    const mine = this.openByKey.get(keyId) ?? 0;
    if (mine >= this.limits.maxPerKey) {
      throw new AppError(
        'RATE_LIMITED',
        `at most ${this.limits.maxPerKey} open event streams per key`,
        { limit: this.limits.maxPerKey, scope: 'key' },
        5,
      );
    }
    if (this.open >= this.limits.maxTotal) {
      throw new AppError(
        'RATE_LIMITED',
        'the server holds as many event streams as it allows; retry shortly',
        { limit: this.limits.maxTotal, scope: 'server' },
        5,
      );
    }
    this.openByKey.set(keyId, mine + 1);
    this.open += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open -= 1;
      const left = (this.openByKey.get(keyId) ?? 1) - 1;
      if (left === 0) this.openByKey.delete(keyId);
      else this.openByKey.set(keyId, left);
    };
  }

  /** Calls `listener` with every read of task `id` until the returned function is called. */
  subscribe(id: string, listener: Listener): () => void {
    let watch = this.watches.get(id);
    if (!watch) {
      watch = new TaskWatch(id, this.queue, this.pollMs);
      this.watches.set(id, watch);
      watch.wake();
    }
    watch.listeners.add(listener);
    const w = watch;
    return () => {
      w.listeners.delete(listener);
      if (w.listeners.size === 0 && this.watches.get(id) === w) {
        w.stop();
        this.watches.delete(id);
      }
    };
  }

  /** Open streams and watched tasks (for tests and measurements). */
  stats(): { streams: number; tasks: number } {
    return { streams: this.open, tasks: this.watches.size };
  }

  close(): void {
    this.queue.off('progress', this.wake);
    this.queue.off('completed', this.wake);
    this.queue.off('failed', this.wake);
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }
}

/** The progress fields a stream sends, and the event id that names them. */
function progressOf(job: Job) {
  const state = { id: job.id, state: job.state, progress: job.progress, attempts_made: job.attemptsMade };
  return { state, eventId: `${job.attemptsMade}.${job.state}.${job.progress}` };
}

const HEARTBEAT_MS = 15_000;
/** How long EventSource waits before it reconnects after the stream ends, ms. */
const RECONNECT_MS = 1_000;

export interface TaskEventStream {
  hub: TaskEventHub;
  response: ServerResponse;
  /** The task as read when the request came in. */
  job: Job;
  /** The Last-Event-ID the client sent when it reconnected. */
  lastEventId: string | undefined;
  /** The task as the final `end` event shows it. */
  view: (job: Job) => unknown;
  /** Gives back the stream's slot (from hub.acquire). */
  release: () => void;
  log: FastifyBaseLogger;
}

/**
 * Writes the stream: `progress` whenever state, progress or attempts change (with an `id`),
 * `end` with the final task, a comment every 15 s, and ends at the task's end, at the lifetime
 * limit, or when the client goes.
 */
export function streamTaskEvents(s: TaskEventStream): void {
  const { response: res } = s;
  res.writeHead(200, SSE_HEADERS);
  res.write(`retry: ${RECONNECT_MS}\n\n`);
  let last = s.lastEventId;
  let job = s.job;
  let done = false;
  const send = (event: string, data: unknown, id?: string) =>
    res.write(`event: ${event}\n${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`);

  const finish = () => {
    if (done) return;
    done = true;
    unsubscribe();
    clearInterval(heartbeat);
    clearTimeout(lifetime);
    s.release();
    res.end();
  };
  const show = (current: Job) => {
    const { state, eventId } = progressOf(current);
    if (eventId !== last) {
      send('progress', state, eventId);
      last = eventId;
    }
    if (FINISHED_STATES.includes(current.state)) {
      send('end', s.view(current));
      finish();
    }
  };
  const onUpdate = (u: TaskUpdate) => {
    if (done) return;
    if ('error' in u) {
      s.log.warn({ err: u.error, taskId: job.id }, 'task event stream failed');
      send('error', { code: 'INTERNAL', message: 'the task could not be read' });
      finish();
      return;
    }
    // A task pruned while watched ended as far as the stream can tell.
    job = u.job ?? { ...job, state: 'cancelled' };
    show(job);
  };

  const unsubscribe = s.hub.subscribe(job.id, onUpdate);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  const lifetime = setTimeout(finish, s.hub.limits.maxLifetimeMs);
  res.on('close', finish);
  show(job);
}
