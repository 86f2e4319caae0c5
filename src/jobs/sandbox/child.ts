/**
 * The sandbox child's loop: receives one task at a time over IPC, runs its
 * handler with the same context as in-process tasks, and answers with the
 * result or a described error plus its RSS (the parent recycles it past the
 * memory ceiling). Started by the composition root `src/main/task-child.ts`.
 */
import type { Logger } from 'pino';
import { describeError, TaskCancelledError, TaskTimeoutError } from '../errors.js';
import type { TaskRegistry } from '../registry.js';
import type { FromChild, ToChild } from './protocol.js';

export interface TaskChildOptions {
  registry: TaskRegistry;
  deps: unknown;
  logger: Logger;
}

const rssMb = () => Math.round(process.memoryUsage.rss() / 1048576);

export function runTaskChild({ registry, deps, logger }: TaskChildOptions): void {
  const send = (m: FromChild) => process.send?.(m);
  const running = new Map<string, AbortController>();
  process.on('message', (msg: ToChild) => {
    if (msg.type === 'abort') {
      running
        .get(msg.id)
        ?.abort(msg.reason === 'cancel' ? new TaskCancelledError() : new Error('worker shutting down'));
      return;
    }
    void run(msg);
  });
  // The parent is gone (killed): nothing can receive our results, so stop.
  process.on('disconnect', () => process.exit(0));

  async function run(msg: Extract<ToChild, { type: 'run' }>): Promise<void> {
    const ac = new AbortController();
    running.set(msg.id, ac);
    const soft = msg.softTimeoutMs
      ? setTimeout(
          () => ac.abort(new TaskTimeoutError(`soft timeout after ${msg.softTimeoutMs} ms`, 'soft')),
          msg.softTimeoutMs,
        )
      : undefined;
    try {
      const task = registry.get(msg.name);
      if (!task) throw new Error(`task ${msg.name} is not registered in the sandbox`);
      const result = await task.def.handler(msg.payload, {
        jobId: msg.id,
        attempt: msg.attempt,
        maxAttempts: msg.maxAttempts,
        signal: ac.signal,
        progress: async (value: number) => void send({ type: 'progress', id: msg.id, value }),
        logger: logger.child({ task: msg.name, jobId: msg.id }),
        deps,
      });
      send({ type: 'done', id: msg.id, result, rssMb: rssMb() });
    } catch (err) {
      const reason: unknown = ac.signal.aborted ? ac.signal.reason : undefined;
      send({
        type: 'error',
        id: msg.id,
        error: describeError(reason instanceof Error ? reason : err),
        rssMb: rssMb(),
      });
    } finally {
      clearTimeout(soft);
      running.delete(msg.id);
    }
  }
  send({ type: 'ready' });
}
