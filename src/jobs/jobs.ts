import type { EnqueueOptions, EnqueueResult, JobQueue } from './types.js';
import type { TaskRegistry } from './registry.js';

export interface EnqueueItem {
  name: string;
  payload: unknown;
  opts?: EnqueueOptions;
}

/**
 * What producers use: enqueue a registered task by name. The payload is checked
 * against the task's schema here too, so a bad call fails at the caller
 * (InvalidPayloadError) instead of as a failed job.
 *
 *   await jobs.enqueue('audio.generate', { generationId }, { idempotencyKey: `audio:${generationId}` });
 */
export class Jobs {
  constructor(
    readonly queue: JobQueue,
    readonly registry: TaskRegistry,
    /** Task names admins may enqueue by name through POST /api/v1/tasks. */
    readonly adminEnqueueable: ReadonlySet<string> = new Set(),
  ) {}

  async enqueue(name: string, payload: unknown, opts?: EnqueueOptions): Promise<EnqueueResult> {
    this.registry.validate(name, payload);
    return this.queue.enqueue(this.registry.request(name, payload, opts));
  }

  async enqueueBulk(items: readonly EnqueueItem[]): Promise<EnqueueResult[]> {
    const reqs = items.map((i) => {
      this.registry.validate(i.name, i.payload);
      return this.registry.request(i.name, i.payload, i.opts);
    });
    return this.queue.enqueueBulk(reqs);
  }
}
