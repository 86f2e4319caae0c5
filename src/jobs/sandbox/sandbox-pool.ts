/**
 * Child processes for sandboxed tasks. Each child runs one task at a time; the
 * pool grows to the worker's concurrency. A child is recycled (replaced by a
 * fresh one) after `maxTasksPerChild` tasks or once its RSS passes
 * `maxMemoryMb`; a hard timeout kills it with SIGKILL.
 *
 * Per task the parent does one IPC send and handles one answer: each child has a
 * single message and exit listener for its life, dispatching to the task it runs.
 * A child halfway through its life gets a successor started in the background
 * (a spare), so recycling never waits for a process to start (a bare Node
 * process takes about 70 ms of CPU to start here).
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Logger } from 'pino';
import { describeError, type ErrorInfo, TaskTimeoutError } from '../errors.js';
import type { FromChild, ToChild } from './protocol.js';

export interface SandboxPoolOptions {
  /** Entry module of the child (a composition root calling runTaskChild). */
  childModule: string;
  maxTasksPerChild: number;
  maxMemoryMb: number;
  logger: Logger;
  /** Extra environment for children. */
  env?: NodeJS.ProcessEnv;
}

export interface SandboxRun {
  id: string;
  name: string;
  payload: unknown;
  attempt: number;
  maxAttempts: number;
  softTimeoutMs?: number;
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
  unsubscribe: () => void;
}

class Child {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  tasks = 0;
  busy = false;
  exited = false;
  current: Exchange | undefined;
  private readonly exitListeners: Array<() => void> = [];

  constructor(module: string, env: NodeJS.ProcessEnv, onMessage: (c: Child, m: FromChild) => void) {
    const execArgv = module.endsWith('.ts') ? ['--import', 'tsx'] : [];
    this.proc = fork(module, [], {
      execArgv,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    let markReady: () => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      markReady = resolve;
      this.onExit(() => reject(new Error(`sandbox child exited before ready (${this.exitStatus})`)));
    });
    this.proc.on('message', (m: FromChild) => (m.type === 'ready' ? markReady() : onMessage(this, m)));
    this.proc.once('exit', () => {
      this.exited = true;
      for (const l of this.exitListeners.splice(0)) l();
    });
  }

  onExit(listener: () => void): void {
    if (this.exited) listener();
    else this.exitListeners.push(listener);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get exitStatus(): string {
    return String(this.proc.signalCode ?? this.proc.exitCode);
  }
}

export class SandboxPool {
  private readonly idle: Child[] = [];
  /** Started ahead of need: successors of children past half their life. */
  private readonly spares: Child[] = [];
  private readonly all = new Set<Child>();
  private closed = false;
  /** Children started so far (recycling replaces them). */
  spawned = 0;

  constructor(private readonly opts: SandboxPoolOptions) {}

  /** PIDs of the live children. */
  pids(): number[] {
    return [...this.all].filter((c) => !c.exited).map((c) => c.pid);
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
        reject(new Error(`sandbox child ${child.pid} exited before task ${task.name} (${child.exitStatus})`));
        return;
      }
      const ex: Exchange = { task, resolve, reject, hard: undefined, unsubscribe: () => undefined };
      child.current = ex;
      if (task.hardTimeoutMs)
        ex.hard = setTimeout(() => {
          this.end(child, ex);
          this.opts.logger.warn(
            { pid: child.pid, task: task.name, jobId: task.id },
            'hard timeout: killing sandbox child',
          );
          this.retire(child, 'SIGKILL');
          reject(new TaskTimeoutError(`hard timeout after ${task.hardTimeoutMs} ms (child killed)`, 'hard'));
        }, task.hardTimeoutMs);
      const sendAbort = (reason: unknown) => {
        const msg: ToChild = {
          type: 'abort',
          id: task.id,
          reason: describeError(reason).cancelled ? 'cancel' : 'shutdown',
        };
        if (child.proc.connected) child.proc.send(msg);
      };
      const run: ToChild = {
        type: 'run',
        id: task.id,
        name: task.name,
        payload: task.payload,
        attempt: task.attempt,
        maxAttempts: task.maxAttempts,
        ...(task.softTimeoutMs ? { softTimeoutMs: task.softTimeoutMs } : {}),
      };
      child.proc.send(run);
      if (abort.aborted) sendAbort(abort.reason);
      else ex.unsubscribe = abort.subscribe(sendAbort);
    });
  }

  /** Ends the child's current exchange (its answer, its exit or its hard timeout, whichever comes first). */
  private end(child: Child, ex: Exchange): void {
    clearTimeout(ex.hard);
    ex.unsubscribe();
    if (child.current === ex) child.current = undefined;
  }

  private onMessage = (child: Child, m: FromChild): void => {
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
      this.retire(child);
    }
    if (m.type === 'done') ex.resolve(m.result);
    else ex.reject(new SandboxTaskError(m.error));
  };

  private take(): Child {
    for (;;) {
      const c = this.idle.pop();
      if (!c) break;
      if (!c.exited) return c;
    }
    return this.spares.shift() ?? this.spawn();
  }

  private spawn(): Child {
    const c = new Child(this.opts.childModule, { ...process.env, ...this.opts.env }, this.onMessage);
    c.ready.catch((err: unknown) =>
      this.opts.logger.error({ err: String(err) }, 'sandbox child failed to start'),
    );
    this.spawned++;
    this.all.add(c);
    c.onExit(() => {
      this.all.delete(c);
      for (const list of [this.idle, this.spares]) {
        const i = list.indexOf(c);
        if (i >= 0) list.splice(i, 1);
      }
      const ex = c.current;
      if (ex) {
        this.end(c, ex);
        ex.reject(new Error(`sandbox child ${c.pid} exited during task ${ex.task.name} (${c.exitStatus})`));
      }
    });
    return c;
  }

  private giveBack(c: Child): void {
    if (c.exited || this.closed) return;
    if (c.tasks >= this.opts.maxTasksPerChild) {
      this.retire(c);
      return;
    }
    if (c.tasks === Math.ceil(this.opts.maxTasksPerChild / 2)) this.spares.push(this.spawn());
    if (this.all.has(c)) this.idle.push(c);
  }

  /** Takes a child out of service: a graceful exit (disconnect) or a kill. */
  private retire(c: Child, signal?: NodeJS.Signals): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // The successor: a spare started earlier, or one started now.
    if (!this.closed) this.idle.unshift(this.spares.shift() ?? this.spawn());
    if (c.exited) return;
    if (signal) c.proc.kill(signal);
    else if (c.proc.connected) c.proc.disconnect();
    else c.proc.kill('SIGTERM');
  }

  /** Stops every child: idle ones at once, busy ones are killed after `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const children = [...this.all];
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exited) return resolve();
            const t = setTimeout(() => c.proc.kill('SIGKILL'), c.busy ? graceMs : 1000);
            c.onExit(() => {
              clearTimeout(t);
              resolve();
            });
            if (!c.busy) {
              if (c.proc.connected) c.proc.disconnect();
              else c.proc.kill('SIGTERM');
            }
          }),
      ),
    );
    this.idle.length = 0;
    this.spares.length = 0;
    this.all.clear();
  }
}
