/**
 * The built `omnivibe` command (dist/main/cli.js) run as users run it, for benchmarks: `serve`,
 * `worker` and `start` as separate processes on one data directory, an HTTP client with the admin
 * key, the `task_runs` table read straight from the main SQLite database, and each process's CPU
 * time from /proc. Every process is stopped by its PID (SIGTERM, then SIGKILL after 15 s).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';

/** The build users run (`npm run build`). */
export const CLI = path.resolve('dist/main/cli.js');

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free loopback port (the kernel picks it; closed again before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** User + system CPU seconds process `pid` has used so far (Linux /proc). */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** One `omnivibe <command>` process, its output in a log file. */
export class OmnivibeProcess {
  private readonly child: ChildProcess;

  constructor(
    cli: string,
    readonly command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {
    const out = fs.openSync(logFile, 'a');
    this.child = spawn(process.execPath, [cli, command, ...args], { env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The last lines of its log, for error messages. */
  tail(lines = 30): string {
    const text = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** User + system CPU seconds used so far (Linux /proc). */
  cpuSeconds(): number {
    return cpuSecondsOf(this.pid);
  }

  /** SIGTERM (a graceful stop), SIGKILL if it is still running after 15 s. */
  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.exited) return resolve();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.kill('SIGTERM');
    });
  }
}

export interface EnqueuedTask {
  task_id: string;
  created: boolean;
}

/** The product's HTTP API with the admin key. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly key: string,
  ) {}

  async request<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}/api/v1${url}`, {
      method,
      headers: {
        authorization: `Bearer ${this.key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  enqueue(name: string, payload: unknown = {}): Promise<EnqueuedTask> {
    return this.request('POST', '/tasks', { name, payload });
  }

  async enqueueBulk(tasks: ReadonlyArray<Record<string, unknown>>): Promise<EnqueuedTask[]> {
    return (await this.request<{ items: EnqueuedTask[] }>('POST', '/tasks/bulk', { tasks })).items;
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    await this.request('POST', `/queues/${queue}/${paused ? 'pause' : 'resume'}`);
  }

  workers(): Promise<{ items: Array<{ pid: number; last_seen_at: string }> }> {
    return this.request('GET', '/workers');
  }
}

/** One attempt as `task_runs` recorded it; times are epoch ms. */
export interface RunRow {
  task_id: string;
  status: string;
  started: number | null;
  finished: number | null;
  wait_ms: number | null;
}

/** Reads `task_runs` from the main database file, read-only, while the product's processes write it. */
export class TaskRunsReader {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true });
  }

  /** The newest row id: rows after it belong to what comes next. */
  mark(): number {
    return (this.db.prepare('select coalesce(max(id), 0) as id from task_runs').get() as { id: number }).id;
  }

  /** Final rows (not `retrying`) after `mark` of task `name`. */
  finished(mark: number, name: string): number {
    return (
      this.db
        .prepare(
          "select count(*) as n from task_runs where id > ? and name = ? and status in ('succeeded', 'failed', 'cancelled')",
        )
        .get(mark, name) as { n: number }
    ).n;
  }

  /** Rows after `mark` of task `name`. */
  rows(mark: number, name: string): RunRow[] {
    const raw = this.db
      .prepare(
        'select task_id, status, started_at, finished_at, wait_ms from task_runs where id > ? and name = ? order by id',
      )
      .all(mark, name) as Array<{
      task_id: string;
      status: string;
      started_at: string | null;
      finished_at: string | null;
      wait_ms: number | null;
    }>;
    const ms = (v: string | null) => (v === null ? null : Date.parse(v));
    return raw.map((r) => ({
      task_id: r.task_id,
      status: r.status,
      started: ms(r.started_at),
      finished: ms(r.finished_at),
      wait_ms: r.wait_ms,
    }));
  }

  /** When the latest attempt of a task on `queue` started after `mark` (epoch ms; 0 when none). */
  lastStart(mark: number, queue: string): number {
    const r = this.db
      .prepare('select max(started_at) as s from task_runs where id > ? and queue = ?')
      .get(mark, queue) as { s: string | null };
    return r.s === null ? 0 : Date.parse(r.s);
  }

  /**
   * Waits until `n` final rows of `name` exist after `mark`; throws when none was added for `stallMs`
   * (a loaded machine is slow, a stuck worker makes no progress at all).
   */
  async waitFinished(mark: number, name: string, n: number, stallMs: number, what: string): Promise<void> {
    let seen = -1;
    let progressAt = Date.now();
    for (;;) {
      const done = this.finished(mark, name);
      if (done >= n) return;
      if (done > seen) {
        seen = done;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > stallMs)
        throw new Error(`${what}: ${done} of ${n} tasks finished, none in the last ${stallMs} ms`);
      await sleep(25);
    }
  }

  close(): void {
    this.db.close();
  }
}

export interface StackOptions {
  /** A fresh directory: DATA_DIR of every process (main database, embedded queue, logs). */
  dir: string;
  /** BullMQ on this Redis (its own key prefix); embedded queue when absent. */
  redisUrl?: string;
  /** The `omnivibe` entry point to run (default CLI; another build for A/B comparisons). */
  cli?: string;
}

/**
 * The product on one data directory: an API process (`serve` or `start`) and any `worker` processes,
 * with the default settings except a random port, the admin key, and a write rate limit raised so
 * that one-request-per-task enqueue benchmarks are not stopped by it (the default is 600 a minute).
 */
export class ProductStack {
  readonly key = `ov_bench_${randomBytes(18).toString('hex')}`;
  readonly env: NodeJS.ProcessEnv;
  api!: ApiClient;
  server!: OmnivibeProcess;
  runs!: TaskRunsReader;
  private readonly workersStarted: OmnivibeProcess[] = [];
  static readonly RATE_LIMIT_WRITES_PER_MIN = 1_000_000;

  constructor(private readonly o: StackOptions) {
    // Only what Node needs from the bench's environment: everything else is the product's default.
    this.env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATA_DIR: o.dir,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OMNIVIBE_ADMIN_KEY: this.key,
      RATE_LIMIT_WRITES_PER_MIN: String(ProductStack.RATE_LIMIT_WRITES_PER_MIN),
      ...(o.redisUrl
        ? { REDIS_URL: o.redisUrl, JOBS_REDIS_PREFIX: `ov:q:b${randomBytes(4).toString('hex')}` }
        : {}),
    };
  }

  /** Starts `omnivibe serve` or `omnivibe start` and waits until /ready answers. */
  async startServer(command: 'serve' | 'start'): Promise<void> {
    const port = await freePort();
    this.env.PORT = String(port);
    this.server = new OmnivibeProcess(
      this.o.cli ?? CLI,
      command,
      [],
      this.env,
      path.join(this.o.dir, `${command}.log`),
    );
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.server.exited) throw new Error(`omnivibe ${command} exited:\n${this.server.tail()}`);
      const ok = await fetch(`${base}/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`omnivibe ${command} not ready:\n${this.server.tail()}`);
      await sleep(100);
    }
    this.api = new ApiClient(base, this.key);
    this.runs = new TaskRunsReader(path.join(this.o.dir, 'omnivibe.db'));
    if (command === 'start') await this.waitWorker(this.server);
  }

  /** Starts `omnivibe worker [args]` and waits until its heartbeat record shows. */
  async startWorker(args: string[] = []): Promise<OmnivibeProcess> {
    const n = this.workersStarted.length + 1;
    const w = new OmnivibeProcess(
      this.o.cli ?? CLI,
      'worker',
      args,
      this.env,
      path.join(this.o.dir, `worker-${n}.log`),
    );
    this.workersStarted.push(w);
    await this.waitWorker(w);
    return w;
  }

  private async waitWorker(p: OmnivibeProcess): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (p.exited) throw new Error(`omnivibe ${p.command} exited:\n${p.tail()}`);
      if ((await this.api.workers()).items.some((w) => w.pid === p.pid)) return;
      if (Date.now() > deadline) throw new Error(`no heartbeat from omnivibe ${p.command}:\n${p.tail()}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    for (const w of this.workersStarted) await w.stop();
    await this.server?.stop();
    this.runs?.close();
  }
}
