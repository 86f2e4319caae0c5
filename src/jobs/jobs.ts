import type { TaskRegistry } from './registry.js';
import type { EnqueueOptions, EnqueueResult, JobAdmin, JobLeasing, JobProducer, JobQueue } from './types.js';

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
    return this.producer.enqueue(this.registry.request(name, payload, opts));
  }

  async enqueueBulk(items: readonly EnqueueItem[]): Promise<EnqueueResult[]> {
    const reqs = items.map((i) => {
      this.registry.validate(i.name, i.payload);
      return this.registry.request(i.name, i.payload, i.opts);
    });
    return this.producer.enqueueBulk(reqs);
  }

  /** Flushes pending writes and closes the backend's connections (the composition root's, at exit). */
  close(timeoutMs?: number): Promise<void> {
    return this.queue.close(timeoutMs);
  }
}
