/**
 * Child processes for sandboxed tasks. Each child runs one task at a time; the
 * pool grows to the worker's concurrency. A child is recycled (replaced by a
 * fresh one) after `maxTasksPerChild` tasks or once its RSS passes
 * `maxMemoryMb`; a hard timeout kills it with SIGKILL.
 *
 * Children are started by a small process of their own, the launcher
 * (launcher.ts), never by the worker (see protocol.ts): each is a fresh Node
 * process, spawned. They talk to the worker over a Unix socket in a private
 * directory. Per task the worker writes one line and reads one. A child halfway
 * through its life gets its successor started in the background (a spare), so
 * recycling never waits for a process to start.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { describeError, type ErrorInfo, TaskTimeoutError } from '../errors.js';
import {
  type FromChild,
  type FromLauncher,
  line,
  onLines,
  SANDBOX_SOCKET_ENV,
  SANDBOX_TOKEN_ENV,
  type ToChild,
  type ToLauncher,
} from './protocol.js';

/** Node flags a module needs: TypeScript sources (tests, `npm run dev`) run under tsx. */
const loaderFlags = (module: string) => (module.endsWith('.ts') ? ['--import', 'tsx'] : []);
const LAUNCHER = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './launcher.ts' : './launcher.js', import.meta.url),
);
/**
 * A task told to stop (cancel, a lost lease, an immediate shutdown) has this long to return before
 * its child, with whatever the task started, is killed.
 */
export const ABORT_GRACE_MS = 1000;
/** A launcher (our own small module) not ready this long after its start is killed. */
const LAUNCHER_START_TIMEOUT_MS = 30_000;
/** How long a child whose socket closed waits for its exit status from the launcher. */
const EXIT_REPORT_WAIT_MS = 1000;

export interface SandboxPoolOptions {
  /** Entry module of the child (a composition root calling runTaskChild). */
  childModule: string;
  maxTasksPerChild: number;
  maxMemoryMb: number;
  logger: Logger;
  /** Extra environment for children. */
  env?: NodeJS.ProcessEnv;
  /**
   * A child that has not connected this long after the launcher was asked for it is killed and its
   * task fails, ms (default 30 000).
   */
  startTimeoutMs?: number;
  /** Told of children started and leaving service, and of what children report (metrics). */
  observer?: SandboxObserver;
}

/** Why a child left service: its task budget, its memory ceiling, a kill (hard timeout, an abort not obeyed), or it died. */
export type ChildRecycleReason = 'max_tasks' | 'memory' | 'killed' | 'exited';

/** What the pool tells its owner; every method is called synchronously and must not throw. */
export interface SandboxObserver {
  childStarted(): void;
  childRecycled(reason: ChildRecycleReason): void;
  /** A report a child sent (children listen on no port: what they measure comes through here). */
  report(report: unknown): void;
}

/** A task for a child: the run message it is sent, plus what stays with the worker. */
export interface SandboxRun extends Omit<Extract<ToChild, { type: 'run' }>, 'type'> {
  hardTimeoutMs?: number;
  onProgress(value: number): void;
}

/** How a run learns that its attempt was aborted (cancel, shutdown): the runtime's lazy controller, without an AbortSignal per task. */
export interface AbortSource {
  readonly aborted: boolean;
  readonly reason: unknown;
  /** Calls `listener` once on abort; returns the unsubscribe. */
  subscribe(listener: (reason: unknown) => void): () => void;
}

/** Thrown in the parent for an error the child described. */
export class SandboxTaskError extends Error {
  constructor(readonly info: ErrorInfo) {
    super(info.message);
    this.name = info.name;
  }
}

/** The task a child is running. */
interface Exchange {
  task: SandboxRun;
  resolve(result: unknown): void;
  reject(err: unknown): void;
  hard: NodeJS.Timeout | undefined;
  /** Armed by an abort: the kill if the task does not return within ABORT_GRACE_MS. */
  abortKill: NodeJS.Timeout | undefined;
  unsubscribe: () => void;
}

class Child {
  pid = -1;
  socket: net.Socket | undefined;
  readonly ready: Promise<void>;
  tasks = 0;
  busy = false;
  exited = false;
  /** How it ended: an exit code or signal from the launcher, or what else is known. */
  status = 'unknown';
  current: Exchange | undefined;
  /** Asked to go before it connected: it goes as soon as it can be reached. */
  private leaving: NodeJS.Signals | 'end' | undefined;
  private markReady: () => void = () => undefined;
  private statusWait: NodeJS.Timeout | undefined;
  private readonly exitListeners: Array<() => void> = [];

  constructor(readonly token: string) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.onExit(() => reject(new Error(`sandbox child exited before ready (${this.status})`)));
    });
  }

  spawned(pid: number): void {
    this.pid = pid;
    if (this.leaving && this.leaving !== 'end') this.kill(this.leaving);
  }

  attach(socket: net.Socket, pid: number): void {
    this.socket = socket;
    this.pid = pid;
    // The socket closes when the child dies; its exit status follows from the launcher.
    socket.once('close', () => {
      if (!this.exited) this.statusWait = setTimeout(() => this.ended(), EXIT_REPORT_WAIT_MS);
    });
    if (this.leaving === 'end') socket.end();
    else if (this.leaving) this.kill(this.leaving);
    else this.markReady();
  }

  send(msg: ToChild): void {
    if (this.socket?.writable) this.socket.write(line(msg));
  }

  /** Ends the child: `end` closes its socket (it exits by itself), a signal kills it. */
  leave(how: NodeJS.Signals | 'end'): void {
    this.leaving = how;
    if (how === 'end' && this.socket) this.socket.end();
    else if (how === 'end') this.kill('SIGTERM');
    else this.kill(how);
  }

  /** Signals the child's process group: the child and whatever its task started (ffmpeg). */
  private kill(signal: NodeJS.Signals): void {
    if (this.pid <= 0 || this.exited) return;
    try {
      process.kill(-this.pid, signal);
    } catch (err) {
      // Already gone (its exit is on its way); anything else is a real failure.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  ended(status?: string): void {
    if (status !== undefined) this.status = status;
    if (this.exited) return;
    this.exited = true;
    clearTimeout(this.statusWait);
    this.socket?.destroy();
    for (const l of this.exitListeners.splice(0)) l();
  }

  onExit(listener: () => void): void {
    if (this.exited) listener();
    else this.exitListeners.push(listener);
  }
}

export class SandboxPool {
  private readonly idle: Child[] = [];
  /** Started ahead of need: successors of children past half their life. */
  private readonly spares: Child[] = [];
  /** Children in service (idle, busy or spare). */
  private readonly all = new Set<Child>();
  /** Every child not yet exited, retiring ones included, by token. */
  private readonly alive = new Map<string, Child>();
  private closed = false;
  /** The launcher, and the socket children connect to, started with the first child. */
  private infra: Promise<{ launcher: ChildProcess; socketPath: string }> | undefined;
  private server: net.Server | undefined;
  private socketDir: string | undefined;

  constructor(private readonly opts: SandboxPoolOptions) {}

  /** PIDs of the live children in service. */
  pids(): number[] {
    return [...this.all].filter((c) => !c.exited && c.pid > 0).map((c) => c.pid);
  }

  async run(task: SandboxRun, abort: AbortSource): Promise<{ result: unknown; pid: number }> {
    if (this.closed) throw new Error('sandbox pool is closed');
    const child = this.take();
    child.busy = true;
    try {
      await child.ready;
      const result = await this.exchange(child, task, abort);
      return { result, pid: child.pid };
    } finally {
      child.busy = false;
      child.tasks++;
      this.giveBack(child);
    }
  }

  private exchange(child: Child, task: SandboxRun, abort: AbortSource): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (child.exited) {
        reject(new Error(`sandbox child ${child.pid} exited before task ${task.name} (${child.status})`));
        return;
      }
      const ex: Exchange = {
        task,
        resolve,
        reject,
        hard: undefined,
        abortKill: undefined,
        unsubscribe: () => undefined,
      };
      child.current = ex;
      if (task.hardTimeoutMs)
        ex.hard = setTimeout(() => {
          this.end(child, ex);
          this.opts.logger.warn(
            { pid: child.pid, task: task.name, jobId: task.id },
            'hard timeout: killing sandbox child',
          );
          this.retire(child, 'SIGKILL', 'killed');
          reject(new TaskTimeoutError(`hard timeout after ${task.hardTimeoutMs} ms (child killed)`, 'hard'));
        }, task.hardTimeoutMs);
      const sendAbort = (reason: unknown) => {
        child.send({
          type: 'abort',
          id: task.id,
          reason: describeError(reason).cancelled ? 'cancel' : 'shutdown',
        });
        ex.abortKill = setTimeout(() => {
          this.end(child, ex);
          this.opts.logger.warn(
            { pid: child.pid, task: task.name, jobId: task.id, graceMs: ABORT_GRACE_MS },
            'aborted task did not return: killing sandbox child',
          );
          this.retire(child, 'SIGKILL', 'killed');
          reject(reason instanceof Error ? reason : new Error(String(reason)));
        }, ABORT_GRACE_MS);
      };
      child.send({
        type: 'run',
        id: task.id,
        name: task.name,
        payload: task.payload,
        attempt: task.attempt,
        maxAttempts: task.maxAttempts,
        ...(task.softTimeoutMs ? { softTimeoutMs: task.softTimeoutMs } : {}),
        ...(task.trace ? { trace: task.trace } : {}),
      });
      if (abort.aborted) sendAbort(abort.reason);
      else ex.unsubscribe = abort.subscribe(sendAbort);
    });
  }

  /** Ends the child's current exchange (its answer, its exit or its hard timeout, whichever comes first). */
  private end(child: Child, ex: Exchange): void {
    clearTimeout(ex.hard);
    clearTimeout(ex.abortKill);
    ex.unsubscribe();
    if (child.current === ex) child.current = undefined;
  }

  private onMessage(child: Child, m: FromChild): void {
    if (m.type === 'report') {
      this.opts.observer?.report(m.report);
      return;
    }
    const ex = child.current;
    if (m.type === 'ready' || !ex || m.id !== ex.task.id) return;
    if (m.type === 'progress') {
      ex.task.onProgress(m.value);
      return;
    }
    this.end(child, ex);
    if (m.rssMb > this.opts.maxMemoryMb) {
      this.opts.logger.info(
        { pid: child.pid, rssMb: m.rssMb, maxMb: this.opts.maxMemoryMb },
        'sandbox child past its memory ceiling: recycling',
      );
      this.retire(child, undefined, 'memory');
    }
    if (m.type === 'done') ex.resolve(m.result);
    else ex.reject(new SandboxTaskError(m.error));
  }

  private take(): Child {
    for (;;) {
      const c = this.idle.pop();
      if (!c) break;
      if (!c.exited) return c;
    }
    return this.spares.shift() ?? this.spawn();
  }

  private spawn(): Child {
    const c = new Child(randomBytes(16).toString('hex'));
    // A spare ended by close() before it connected did not fail.
    c.ready.catch((err: unknown) =>
      this.opts.logger[this.closed ? 'debug' : 'error']({ err }, 'sandbox child failed to start'),
    );
    this.all.add(c);
    this.alive.set(c.token, c);
    this.opts.observer?.childStarted();
    c.onExit(() => {
      // Still in service when it exited: it died (a retired child has left service already).
      if (this.all.has(c) && !this.closed) this.opts.observer?.childRecycled('exited');
      this.all.delete(c);
      this.alive.delete(c.token);
      for (const list of [this.idle, this.spares]) {
        const i = list.indexOf(c);
        if (i >= 0) list.splice(i, 1);
      }
      const ex = c.current;
      if (ex) {
        this.end(c, ex);
        ex.reject(new Error(`sandbox child ${c.pid} exited during task ${ex.task.name} (${c.status})`));
      }
    });
    // A child that never connects (a broken or mismatched child module) must fail its task, not hang it.
    // Its time counts from the launcher's request: the launcher's own start has a timer of its own.
    const startTimeoutMs = this.opts.startTimeoutMs ?? 30_000;
    let startTimer: NodeJS.Timeout | undefined;
    this.launch(c).then(
      () => {
        if (c.exited) return;
        startTimer = setTimeout(() => {
          this.opts.logger.error(
            { pid: c.pid, startTimeoutMs },
            'sandbox child did not connect in time: killing it',
          );
          c.leave('SIGKILL');
          c.ended(`did not connect within ${startTimeoutMs} ms`);
        }, startTimeoutMs);
      },
      (err: unknown) => c.ended(`not started: ${String(err)}`),
    );
    const clear = () => clearTimeout(startTimer);
    c.ready.then(clear, clear);
    return c;
  }

  /** Asks the launcher (started on first use) for the child's process. */
  private async launch(c: Child): Promise<void> {
    const { launcher, socketPath } = await (this.infra ??= this.startInfra());
    const msg: ToLauncher = {
      type: 'spawn',
      token: c.token,
      args: [...loaderFlags(this.opts.childModule), this.opts.childModule],
      env: {
        ...process.env,
        ...this.opts.env,
        [SANDBOX_SOCKET_ENV]: socketPath,
        [SANDBOX_TOKEN_ENV]: c.token,
      },
    };
    launcher.send(msg);
  }

  private async startInfra(): Promise<{ launcher: ChildProcess; socketPath: string }> {
    if (!this.server) {
      this.socketDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-sandbox-'));
      const server = net.createServer((socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path.join(this.socketDir as string, 'pool.sock'), () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.opts.logger.error({ err }, 'sandbox socket failed'));
      this.server = server;
    }
    const socketPath = path.join(this.socketDir as string, 'pool.sock');
    const launcher = fork(LAUNCHER, [], {
      execArgv: loaderFlags(LAUNCHER),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    launcher.on('message', (m: FromLauncher) => {
      if (m.type === 'spawned') this.alive.get(m.token)?.spawned(m.pid);
      else if (m.type === 'stderr') this.childStderr(this.alive.get(m.token), m.text);
      else if (m.type === 'exit') this.alive.get(m.token)?.ended(m.status);
    });
    launcher.once('exit', (code, signal) => {
      this.infra = undefined;
      // The ones it had not started never will be. Children it started stay connected.
      for (const c of this.alive.values())
        if (c.pid <= 0) c.ended(`sandbox launcher exited (${signal ?? code}) before starting it`);
      if (!this.closed)
        this.opts.logger.warn({ code, signal }, 'sandbox launcher exited; the next child starts a new one');
    });
    // A launcher that never gets ready is killed.
    const startTimer = setTimeout(() => {
      this.opts.logger.error(
        { startTimeoutMs: LAUNCHER_START_TIMEOUT_MS },
        'sandbox launcher not ready in time: killing it',
      );
      launcher.kill('SIGKILL');
    }, LAUNCHER_START_TIMEOUT_MS);
    try {
      await new Promise<void>((resolve, reject) => {
        launcher.once('message', () => resolve());
        launcher.once('exit', (code, signal) =>
          reject(new Error(`sandbox launcher exited at start (${signal ?? code})`)),
        );
      });
    } finally {
      clearTimeout(startTimer);
    }
    return { launcher, socketPath };
  }

  /** A child's stderr goes to the worker's log, with the task it was running. */
  private childStderr(child: Child | undefined, text: string): void {
    const task = child?.current?.task;
    this.opts.logger.error(
      { pid: child?.pid, ...(task ? { task: task.name, jobId: task.id } : {}), stderr: text.trimEnd() },
      'sandbox child wrote to stderr',
    );
  }

  /** A child connected: its first line names it by its token. */
  private accept(socket: net.Socket): void {
    let child: Child | undefined;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A child that dies mid-write resets its socket: its exit is reported anyway.
      const level = err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'debug' : 'warn';
      this.opts.logger[level]({ err, pid: child?.pid }, 'sandbox child socket error');
    });
    onLines(socket, (raw) => {
      const m = raw as FromChild;
      if (child) this.onMessage(child, m);
      else if (m.type === 'ready' && this.alive.has(m.token)) {
        child = this.alive.get(m.token) as Child;
        child.attach(socket, m.pid);
      } else socket.destroy();
    });
  }

  private giveBack(c: Child): void {
    if (c.exited || this.closed) return;
    if (c.tasks >= this.opts.maxTasksPerChild) {
      this.retire(c, undefined, 'max_tasks');
      return;
    }
    if (c.tasks === Math.ceil(this.opts.maxTasksPerChild / 2)) this.spares.push(this.spawn());
    if (this.all.has(c)) this.idle.push(c);
  }

  /** Takes a child out of service: a graceful exit (its socket closes) or a kill. */
  private retire(c: Child, signal: NodeJS.Signals | undefined, reason: ChildRecycleReason): void {
    if (this.all.has(c)) this.opts.observer?.childRecycled(reason);
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // The successor: a spare started earlier, or one started now.
    if (!this.closed) this.idle.unshift(this.spares.shift() ?? this.spawn());
    if (!c.exited) c.leave(signal ?? 'end');
  }

  /** Stops every child (idle ones at once, busy ones are killed after `graceMs`), then the launcher. */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.alive.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => c.leave('SIGKILL'), c.busy ? graceMs : 1000);
            c.onExit(() => {
              clearTimeout(t);
              resolve();
            });
            if (!c.busy) c.leave('end');
          }),
      ),
    );
    this.idle.length = 0;
    this.spares.length = 0;
    this.all.clear();
    const infra = await this.infra?.catch(() => undefined);
    if (infra?.launcher.connected) infra.launcher.disconnect();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.socketDir) fs.rmSync(this.socketDir, { recursive: true, force: true });
  }
}
