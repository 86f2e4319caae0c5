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
 *
 * Started as a fork server (fork-server.ts), the same module first loads the
 * handlers, then forks each child from itself: a child inherits them and
 * starts with its first task.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { describeError, TaskCancelledError, TaskTimeoutError } from '../errors.js';
import type { TaskContext } from '../registry.js';
import {
  type FromChild,
  line,
  onLines,
  SANDBOX_SOCKET_ENV,
  SANDBOX_TOKEN_ENV,
  type ToChild,
} from './protocol.js';
import { isForkServer, serveForks } from './fork-server.js';

/** How a child finds a sandboxed task's handler. */
export interface SandboxEntry {
  /** Imports the handler's module (once per child). */
  load(): Promise<(payload: never, ctx: never) => Promise<unknown>>;
  /** The handler uses ctx.deps. */
  deps: boolean;
}

export interface TaskChildOptions {
  catalogue: Readonly<Record<string, SandboxEntry>>;
  /** Builds the task dependencies; called once, for the first handler that uses them. */
  deps(): Promise<unknown>;
  /** Loads (without building) what deps() needs; a fork server calls it once before it forks. */
  preloadDeps(): Promise<void>;
  /** The child's logger; called once, when a handler first logs. */
  logger(): Logger;
}

type Handler = (payload: unknown, ctx: TaskContext) => Promise<unknown>;

/** What the protocol loop runs tasks with. */
interface Tasks {
  handlerFor(name: string): Promise<Handler>;
  /** The task's ctx.deps, when its handler uses them. */
  depsFor(name: string): Promise<unknown> | undefined;
  logger(): Logger;
}

const rssMb = () => Math.round(process.memoryUsage.rss() / 1048576);

export function runTaskChild(opts: TaskChildOptions): void {
  ignoreTerminalInterrupt();
  const handlers = new Map<string, Promise<Handler>>();
  let deps: Promise<unknown> | undefined;
  let logger: Logger | undefined;
  const tasks: Tasks = {
    handlerFor(name) {
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
    },
    depsFor: (name) => (opts.catalogue[name]?.deps ? (deps ??= opts.deps()) : undefined),
    logger: () => (logger ??= opts.logger()),
  };
  if (isForkServer())
    serveForks({
      preload: async () => {
        // Lean handlers only: a handler with deps pulls in the database and queue layers, which
        // would double the server's memory and with it the cost of every fork and every child's
        // exit; a child loads such a handler when it first runs it. From TypeScript sources,
        // though, a child cannot load anything (tsx's loader thread stays with the server), so
        // the server loads it all.
        const fromSources = import.meta.url.endsWith('.ts');
        const preloaded = Object.entries(opts.catalogue).filter(([, e]) => fromSources || !e.deps);
        await Promise.all([
          ...preloaded.map(([name]) => tasks.handlerFor(name)),
          ...(fromSources ? [opts.preloadDeps()] : []),
        ]);
        await warmUp();
      },
      startChild: () => startChild(tasks),
    });
  else startChild(tasks);
}

/**
 * Ctrl-C in a terminal sends SIGINT to the worker's whole process group. The
 * worker answers it by letting active tasks finish; a child that died of it
 * would lose its task. The worker ends its children (it closes their sockets,
 * or kills them) when it is done.
 */
function ignoreTerminalInterrupt(): void {
  process.on('SIGINT', () => undefined);
}

function startChild(tasks: Tasks): void {
  const socketPath = process.env[SANDBOX_SOCKET_ENV];
  const token = process.env[SANDBOX_TOKEN_ENV];
  if (!socketPath || !token)
    throw new Error(`a sandbox child needs ${SANDBOX_SOCKET_ENV} and ${SANDBOX_TOKEN_ENV}`);
  const socket = net.connect(socketPath);
  // The worker retired this child, or is gone: nothing can receive our results, so stop.
  socket.on('close', () => process.exit(0));
  socket.on('error', (err) => {
    process.stderr.write(`sandbox child ${process.pid}: worker socket failed: ${err.message}\n`);
    process.exit(1);
  });
  serve(socket, token, tasks);
}

/** The child's side of the protocol on a connected socket: runs each task it is sent. */
function serve(socket: net.Socket, token: string, tasks: Tasks): void {
  // After the worker closed the socket (it retired or lost this child) there is no one to answer.
  const send = (m: FromChild) => void (socket.writable && socket.write(line(m)));
  const running = new Map<string, AbortController>();

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
    try {
      const handler = await tasks.handlerFor(msg.name);
      const deps = tasks.depsFor(msg.name);
      const result = await handler(msg.payload, {
        jobId: msg.id,
        attempt: msg.attempt,
        maxAttempts: msg.maxAttempts,
        signal: ac.signal,
        progress: async (value: number) => void send({ type: 'progress', id: msg.id, value }),
        get logger() {
          return tasks.logger().child({ task: msg.name, jobId: msg.id });
        },
        deps: deps === undefined ? undefined : await deps,
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
  send({ type: 'ready', token, pid: process.pid });
}

/** Tasks a fork server runs through its own protocol loop before it forks. */
const WARM_UP_TASKS = 100;

/**
 * Runs the protocol loop in the fork server, against a socket of its own, with a
 * task that does nothing: children then start with that code (ours and Node's
 * socket and stream code) compiled and its inline caches warm, rather than each
 * child compiling it anew over its first tasks. Measured here: a child's CPU
 * over its 100 tasks fell by about a third. Everything it opens is closed
 * before the first fork.
 */
async function warmUp(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-sandbox-warm-'));
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject).listen(path.join(dir, 'warm.sock'), resolve);
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const child = net.connect(path.join(dir, 'warm.sock'));
    const nothing: Handler = async () => null;
    serve(child, 'warm-up', {
      handlerFor: async () => nothing,
      depsFor: () => undefined,
      logger: () => {
        throw new Error('the warm-up task does not log');
      },
    });
    const worker = await accepted;
    let next = 0;
    await new Promise<void>((resolve, reject) => {
      const sendRun = () =>
        worker.write(
          line({ type: 'run', id: String(next++), name: 'warm-up', payload: {}, attempt: 1, maxAttempts: 1 }),
        );
      onLines(worker, (raw) => {
        const m = raw as FromChild;
        if (m.type === 'error') reject(new Error(`warm-up task failed: ${m.error.message}`));
        else if (m.type === 'ready' || m.type === 'done') {
          if (next < WARM_UP_TASKS) sendRun();
          else if (m.type === 'done' && m.id === String(WARM_UP_TASKS - 1)) resolve();
        }
      });
      worker.once('error', reject);
    });
    await Promise.all([worker, child].map((s) => new Promise((r) => s.once('close', r).destroy())));
  } finally {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
