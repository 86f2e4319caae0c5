/**
 * The sandbox child's loop: receives one task at a time over IPC, runs its
 * handler with the same context as in-process tasks, and answers with the
 * result or a described error plus its RSS (the parent recycles it past the
 * memory ceiling). Started by the composition root `src/main/task-child.ts`.
 *
 * A child starts lean and stays so: it loads a task's handler when it first
 * runs that task, builds the task dependencies only for a handler that uses
 * them, and makes its logger on first use. Children are recycled every
 * --max-tasks-per-child tasks, so their start-up is paid again and again.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { describeError, TaskCancelledError, TaskTimeoutError } from '../errors.js';
import type { TaskContext } from '../registry.js';
import type { JobSpans } from '../types.js';
import {
  type FromChild,
  line,
  onLines,
  SANDBOX_SOCKET_ENV,
  SANDBOX_TOKEN_ENV,
  type ToChild,
} from './protocol.js';

/** How a child finds a sandboxed task's handler. */
export interface SandboxEntry {
  /** Imports the handler's module (once per child). */
  load(): Promise<(payload: never, ctx: never) => Promise<unknown>>;
  /** The handler uses ctx.deps. */
  deps: boolean;
}

export interface TaskChildOptions {
  catalogue: Readonly<Record<string, SandboxEntry>>;
  /**
   * Builds the task dependencies; called once, for the first handler that uses them. `report`
   * sends what they measure to the worker (the child listens on no port): the pool hands it to its
   * observer.
   */
  deps(report: (report: unknown) => void): Promise<unknown>;
  /** The child's logger; called once, when a handler first logs. */
  logger(): Logger;
  /** Runs each task inside a span continuing the worker's attempt (tracing on). */
  spans?: Pick<JobSpans, 'sandboxed'>;
  /** Called before the child exits when the worker closes its socket (tracing: spans not yet exported are sent). */
  beforeExit?: () => Promise<void>;
}

type Handler = (payload: unknown, ctx: TaskContext) => Promise<unknown>;

const rssMb = () => Math.round(process.memoryUsage.rss() / 1048576);

/**
 * Connects to the worker (socket path and token from the environment) and runs
 * each task it is sent. A child is the leader of its own process group (the
 * launcher starts it detached): a terminal's Ctrl-C, meant for the worker,
 * does not reach it, and the worker kills the whole group, so processes a task
 * started (ffmpeg) die with the child.
 */
export function runTaskChild(opts: TaskChildOptions): void {
  const socketPath = process.env[SANDBOX_SOCKET_ENV];
  const token = process.env[SANDBOX_TOKEN_ENV];
  if (!socketPath || !token)
    throw new Error(`a sandbox child needs ${SANDBOX_SOCKET_ENV} and ${SANDBOX_TOKEN_ENV}`);
  const handlers = new Map<string, Promise<Handler>>();
  let deps: Promise<unknown> | undefined;
  let logger: Logger | undefined;
  const handlerFor = (name: string): Promise<Handler> => {
    let h = handlers.get(name);
    if (!h) {
      const entry = opts.catalogue[name];
      if (!entry) return Promise.reject(new Error(`task ${name} is not in the sandbox catalogue`));
      h = entry.load() as unknown as Promise<Handler>;
      // A failed load (a broken module) is retried by the next task rather than cached.
      h.catch(() => handlers.delete(name));
      handlers.set(name, h);
    }
    return h;
  };
  const childLogger = () => (logger ??= opts.logger());

  const socket = net.connect(socketPath);
  // After the worker closed the socket (it retired or lost this child) there is no one to answer.
  const send = (m: FromChild) => void (socket.writable && socket.write(line(m)));
  const depsFor = (name: string) =>
    opts.catalogue[name]?.deps
      ? (deps ??= opts.deps((report) => send({ type: 'report', report })))
      : undefined;
  const running = new Map<string, AbortController>();
  // The worker retired this child, or is gone: nothing can receive our results, so stop. A task still
  // running (the worker died) takes the processes it started with it: the whole group is killed.
  socket.on('close', () => {
    if (running.size > 0) process.kill(0, 'SIGKILL');
    else if (opts.beforeExit) void opts.beforeExit().finally(() => process.exit(0));
    else process.exit(0);
  });
  socket.on('error', (err) => {
    process.stderr.write(`sandbox child ${process.pid}: worker socket failed: ${err.message}\n`);
    socket.destroy();
  });

  onLines(socket, (raw) => {
    const msg = raw as ToChild;
    if (msg.type === 'abort') {
      running
        .get(msg.id)
        ?.abort(msg.reason === 'cancel' ? new TaskCancelledError() : new Error('worker shutting down'));
      return;
    }
    void run(msg);
  });

  async function run(msg: Extract<ToChild, { type: 'run' }>): Promise<void> {
    const ac = new AbortController();
    running.set(msg.id, ac);
    const soft = msg.softTimeoutMs
      ? setTimeout(
          () => ac.abort(new TaskTimeoutError(`soft timeout after ${msg.softTimeoutMs} ms`, 'soft')),
          msg.softTimeoutMs,
        )
      : undefined;
    const runTask = async () => {
      const handler = await handlerFor(msg.name);
      const taskDeps = depsFor(msg.name);
      return handler(msg.payload, {
        jobId: msg.id,
        attempt: msg.attempt,
        maxAttempts: msg.maxAttempts,
        signal: ac.signal,
        progress: async (value: number) => void send({ type: 'progress', id: msg.id, value }),
        get logger() {
          return childLogger().child({ task: msg.name, jobId: msg.id });
        },
        deps: taskDeps === undefined ? undefined : await taskDeps,
      });
    };
    try {
      const result = await (opts.spans ? opts.spans.sandboxed(msg, msg.trace, runTask) : runTask());
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
  send({ type: 'ready', token, pid: process.pid });
}
