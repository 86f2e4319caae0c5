/**
 * Running one attempt of a job: the payload checked against its task's schema, then the task's handler
 * in this process (soft timeout through its AbortSignal, hard timeout by giving the attempt up) or in a
 * sandbox child (whose hard timeout kills the child). Says how the attempt ended; what follows is the
 * retry policy's and the settlement's business.
 */
import type { Logger } from 'pino';
import { describeError, type ErrorInfo, TaskTimeoutError, UnknownTaskError } from '../errors.js';
import type { TaskRegistry } from '../registry.js';
import { type SandboxPool, SandboxTaskError } from '../sandbox/sandbox-pool.js';
import type { ClaimedJob, JobLeasing, JobSpans } from '../types.js';
import type { LazyAbort } from './lazy-abort.js';

export type AttemptEnd = { result: unknown; error?: undefined } | { result?: undefined; error: ErrorInfo };

export interface AttemptRunnerOptions {
  registry: TaskRegistry;
  /** Reports progress of the job (the leasing role's progress). */
  leasing: Pick<JobLeasing, 'progress'>;
  /** Handed to in-process handlers as ctx.deps. */
  deps: unknown;
  /** The worker's task logger (worker id bound). */
  taskLog: Logger;
  workerId: string;
  sandbox: SandboxPool | undefined;
  /** Tells a sandbox child which span its task continues (tracing on). */
  spans?: Pick<JobSpans, 'current'> | undefined;
}

export class AttemptRunner {
  constructor(private readonly o: AttemptRunnerOptions) {}

  async run(job: ClaimedJob, ac: LazyAbort): Promise<AttemptEnd> {
    const { registry, leasing, taskLog: logger } = this.o;
    const task = registry.get(job.name);
    let softTimer: NodeJS.Timeout | undefined;
    let hardTimer: NodeJS.Timeout | undefined;
    try {
      if (!task) throw new UnknownTaskError(job.name);
      registry.validate(job.name, job.payload);
      const { softTimeoutMs, hardTimeoutMs } = task.def.timeouts?.(job.payload as never) ?? task.def;
      const onProgress = (v: number) =>
        void leasing
          .progress(job, this.o.workerId, v)
          .catch((err: unknown) => logger.warn({ err, jobId: job.id }, 'progress update failed'));
      if (task.def.sandboxed) {
        if (!this.o.sandbox)
          throw new Error(`task ${job.name} is sandboxed but this worker has no sandbox configured`);
        const out = await this.o.sandbox.run(
          {
            id: job.id,
            name: job.name,
            payload: job.payload,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            ...(softTimeoutMs ? { softTimeoutMs } : {}),
            ...(this.o.spans ? { trace: this.o.spans.current() } : {}),
            ...(hardTimeoutMs ? { hardTimeoutMs } : {}),
            onProgress,
          },
          ac,
        );
        return { result: out.result };
      }
      if (softTimeoutMs)
        softTimer = setTimeout(
          () => ac.abort(new TaskTimeoutError(`soft timeout after ${softTimeoutMs} ms`, 'soft')),
          softTimeoutMs,
        );
      const deps = this.o.deps;
      const run = task.def.handler(job.payload, {
        jobId: job.id,
        attempt: job.attempt,
        maxAttempts: job.maxAttempts,
        // Made on first use (LazyAbort): a handler that never looks costs no controller.
        get signal() {
          return ac.signal;
        },
        progress: async (v: number) => onProgress(v),
        // A child logger per attempt costs more than a no-op task: built only when the handler uses it.
        get logger() {
          return logger.child({ jobId: job.id, task: job.name, queue: job.queue, attempt: job.attempt });
        },
        deps,
      });
      const result = hardTimeoutMs
        ? await Promise.race([
            run,
            new Promise<never>((_, reject) => {
              hardTimer = setTimeout(
                () =>
                  reject(
                    new TaskTimeoutError(
                      `hard timeout after ${hardTimeoutMs} ms (in-process: the attempt is abandoned)`,
                      'hard',
                    ),
                  ),
                hardTimeoutMs,
              );
            }),
          ])
        : await run;
      return { result };
    } catch (err) {
      // An abort explains itself (cancel, soft timeout, shutdown, lost lease) better than the handler's AbortError.
      const reason: unknown = ac.aborted ? ac.reason : undefined;
      if (err instanceof TaskTimeoutError && err.kind === 'hard') return { error: describeError(err) };
      if (reason instanceof Error) return { error: describeError(reason) };
      if (err instanceof SandboxTaskError) return { error: err.info };
      return { error: describeError(err) };
    } finally {
      clearTimeout(softTimer);
      clearTimeout(hardTimer);
    }
  }
}
