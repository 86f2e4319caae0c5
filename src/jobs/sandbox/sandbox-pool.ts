/**
 * Child processes for sandboxed tasks. Each child runs one task at a time; the
 * pool grows to the worker's concurrency. A child is recycled (replaced by a
 * fresh one) after `maxTasksPerChild` tasks or once its RSS passes
 * `maxMemoryMb`; a hard timeout kills it with SIGKILL.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
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

/** Thrown in the parent for an error the child described. */
export class SandboxTaskError extends Error {
  constructor(readonly info: ErrorInfo) {
    super(info.message);
    this.name = info.name;
  }
}

class Child {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  tasks = 0;
  busy = false;
  exited = false;
  readonly events = new EventEmitter();

  constructor(module: string, env: NodeJS.ProcessEnv) {
    const execArgv = module.endsWith('.ts') ? ['--import', 'tsx'] : [];
    this.proc = fork(module, [], {
      execArgv,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.ready = new Promise((resolve, reject) => {
      const onMsg = (m: FromChild) => {
        if (m.type === 'ready') {
          this.proc.off('message', onMsg);
          resolve();
        }
      };
      this.proc.on('message', onMsg);
      this.proc.once('exit', (code, signal) =>
        reject(new Error(`sandbox child exited before ready (${signal ?? code})`)),
      );
    });
    this.proc.once('exit', () => {
      this.exited = true;
      this.events.emit('exit');
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }
}

export class SandboxPool {
  private readonly idle: Child[] = [];
  private readonly all = new Set<Child>();
  private closed = false;
  /** Children started so far (recycling replaces them). */
  spawned = 0;

  constructor(private readonly opts: SandboxPoolOptions) {}

  /** PIDs of the live children. */
  pids(): number[] {
    return [...this.all].filter((c) => !c.exited).map((c) => c.pid);
  }

  async run(task: SandboxRun, signal: AbortSignal): Promise<{ result: unknown; pid: number }> {
    if (this.closed) throw new Error('sandbox pool is closed');
    const child = this.take();
    child.busy = true;
    try {
      await child.ready;
      const out = await this.exchange(child, task, signal);
      return { result: out, pid: child.pid };
    } finally {
      child.busy = false;
      child.tasks++;
      this.giveBack(child);
    }
  }

  private exchange(child: Child, task: SandboxRun, signal: AbortSignal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let hard: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(hard);
        child.proc.off('message', onMsg);
        child.events.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMsg = (m: FromChild) => {
        if (m.type === 'progress' && m.id === task.id) task.onProgress(m.value);
        else if ((m.type === 'done' || m.type === 'error') && m.id === task.id) {
          cleanup();
          if (m.rssMb > this.opts.maxMemoryMb) {
            this.opts.logger.info(
              { pid: child.pid, rssMb: m.rssMb, maxMb: this.opts.maxMemoryMb },
              'sandbox child past its memory ceiling: recycling',
            );
            this.retire(child);
          }
          if (m.type === 'done') resolve(m.result);
          else reject(new SandboxTaskError(m.error));
        }
      };
      const onExit = () => {
        cleanup();
        reject(
          new Error(
            `sandbox child ${child.pid} exited during task ${task.name} (${child.proc.signalCode ?? child.proc.exitCode})`,
          ),
        );
      };
      const onAbort = () => {
        const reason: unknown = signal.reason;
        const msg: ToChild = {
          type: 'abort',
          id: task.id,
          reason: describeError(reason).cancelled ? 'cancel' : 'shutdown',
        };
        if (child.proc.connected) child.proc.send(msg);
      };
      child.proc.on('message', onMsg);
      child.events.once('exit', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
      if (task.hardTimeoutMs) {
        hard = setTimeout(() => {
          cleanup();
          this.opts.logger.warn(
            { pid: child.pid, task: task.name, jobId: task.id },
            'hard timeout: killing sandbox child',
          );
          this.retire(child, 'SIGKILL');
          reject(new TaskTimeoutError(`hard timeout after ${task.hardTimeoutMs} ms (child killed)`, 'hard'));
        }, task.hardTimeoutMs);
      }
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
    });
  }

  private take(): Child {
    for (;;) {
      const c = this.idle.pop();
      if (!c) break;
      if (!c.exited) return c;
    }
    return this.spawn();
  }

  private spawn(): Child {
    const c = new Child(this.opts.childModule, { ...process.env, ...this.opts.env });
    c.ready.catch((err: unknown) =>
      this.opts.logger.error({ err: String(err) }, 'sandbox child failed to start'),
    );
    this.spawned++;
    this.all.add(c);
    c.events.once('exit', () => {
      this.all.delete(c);
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return c;
  }

  private giveBack(c: Child): void {
    if (c.exited || this.closed) return;
    if (c.tasks >= this.opts.maxTasksPerChild) {
      this.retire(c);
      return;
    }
    if (this.all.has(c)) this.idle.push(c);
  }

  /** Takes a child out of service: a graceful exit (disconnect) or a kill. */
  private retire(c: Child, signal?: NodeJS.Signals): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // Start the successor now, so recycling costs no start-up time on the task path.
    if (!this.closed) this.idle.unshift(this.spawn());
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
            c.events.once('exit', () => {
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
    this.all.clear();
  }
}
