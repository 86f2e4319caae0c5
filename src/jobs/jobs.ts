import type { TaskRegistry } from './registry.js';
import type {
  EnqueueOptions,
  EnqueueRequest,
  EnqueueResult,
  JobAdmin,
  JobLeasing,
  JobProducer,
  JobQueue,
  JobSpans,
} from './types.js';

export interface EnqueueItem {
  name: string;
  payload: unknown;
  opts?: EnqueueOptions;
}

/**
 * The job system as the rest of the application sees it, one role per caller: producers enqueue
 * registered tasks by name (`enqueue`, `enqueueBulk`), the task API and the dashboard inspect and
 * administer jobs (`admin`), the worker runtime leases and settles them (`leasing`). The payload is
 * checked against the task's schema at enqueue, so a bad call fails at the caller (InvalidPayloadError)
 * instead of as a failed job.
 *
 *   await jobs.enqueue('audio.generate', { generationId }, { idempotencyKey: `audio:${generationId}` });
 */
export class Jobs {
  readonly producer: JobProducer;
  readonly admin: JobAdmin;
  readonly leasing: JobLeasing;

  constructor(
    private readonly queue: JobQueue,
    readonly registry: TaskRegistry,
    /** Task names admins may enqueue by name through POST /api/v1/tasks. */
    readonly adminEnqueueable: ReadonlySet<string> = new Set(),
    /** Told of each job this process created (metrics); not of an idempotent repeat. */
    private readonly onCreated?: (req: EnqueueRequest) => void,
    /** Producer spans, and the trace context each job carries to its attempts (tracing on). */
    private readonly spans?: Pick<JobSpans, 'enqueue'>,
  ) {
    this.producer = queue;
    this.admin = queue;
    this.leasing = queue;
  }

  get backend(): JobQueue['backend'] {
    return this.queue.backend;
  }

  async enqueue(name: string, payload: unknown, opts?: EnqueueOptions): Promise<EnqueueResult> {
    this.registry.validate(name, payload);
    const req = this.registry.request(name, payload, opts);
    const result = this.spans
      ? ((
          await this.spans.enqueue([req], (stamped) => this.producer.enqueueBulk(stamped))
        )[0] as EnqueueResult)
      : await this.producer.enqueue(req);
    if (result.created) this.onCreated?.(req);
    return result;
  }

  async enqueueBulk(items: readonly EnqueueItem[]): Promise<EnqueueResult[]> {
    const reqs = items.map((i) => {
      this.registry.validate(i.name, i.payload);
      return this.registry.request(i.name, i.payload, i.opts);
    });
    const results = this.spans
      ? await this.spans.enqueue(reqs, (stamped) => this.producer.enqueueBulk(stamped))
      : await this.producer.enqueueBulk(reqs);
    if (this.onCreated) results.forEach((r, i) => r.created && this.onCreated?.(reqs[i] as EnqueueRequest));
    return results;
  }

  /** Flushes pending writes and closes the backend's connections (the composition root's, at exit). */
  close(timeoutMs?: number): Promise<void> {
    return this.queue.close(timeoutMs);
  }
}
