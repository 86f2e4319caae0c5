/**
 * Sandbox children: the catalogue they load tasks from agrees with the task
 * catalogue; the fork server forks children that are processes of their own
 * (their pid, their randomness, their GC, their exits reported), fails fast when
 * it cannot start, and from the build lets a child load a handler after the
 * fork; with either start mode the memory ceiling recycles children, and a
 * child that dies mid-task fails that attempt and is replaced. Real children
 * (the TypeScript composition root under tsx, and the built one), on the first
 * queue backend of this run.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/migrator.js';
import { openDatabase } from '../../src/db/database.js';
import {
  type AbortSource,
  SandboxPool,
  type SandboxPoolOptions,
  type SandboxStart,
} from '../../src/jobs/sandbox/sandbox-pool.js';
import { TASKS } from '../../src/tasks/index.js';
import { SANDBOX_CATALOGUE } from '../../src/tasks/sandbox-catalogue.js';
import { CHILD_MODULE, type Harness, makeHarness, queueBackends, silent, sleep, until } from './helpers.js';

const PROBE_CHILD = path.resolve('test/jobs/fixtures/probe-child.ts');
const never: AbortSource = { aborted: false, reason: undefined, subscribe: () => () => undefined };
let seq = 0;
const task = (name: string, payload: unknown = {}) => ({
  id: String(++seq),
  name,
  payload,
  attempt: 1,
  maxAttempts: 1,
  onProgress: () => {},
});
const parentOf = (pid: number) =>
  Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
/** PIDs of live processes whose command line mentions `text`. */
const processesWith = (text: string) =>
  fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text);
      } catch (err) {
        // It ended while we looked.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    })
    .map(Number);

describe('sandbox catalogue', () => {
  const sandboxed = TASKS.filter((t) => t.sandboxed);

  it('has every sandboxed task, with the very handler the task declares', async () => {
    expect(sandboxed.length).toBeGreaterThan(0);
    for (const t of sandboxed) {
      const entry = SANDBOX_CATALOGUE[t.name];
      expect(entry, t.name).toBeDefined();
      expect(await entry?.load(), t.name).toBe(t.handler);
    }
  });

  it('has nothing else, and builds deps for every handler that uses them', () => {
    expect(Object.keys(SANDBOX_CATALOGUE).sort()).toEqual(sandboxed.map((t) => t.name).sort());
    for (const t of sandboxed)
      if (/\.deps\b/.test(String(t.handler))) expect(SANDBOX_CATALOGUE[t.name]?.deps, t.name).toBe(true);
  });
});

describe('sandbox pool', () => {
  it('fails the task of a child that never connects, and kills that child', async () => {
    // A child module that starts but never speaks the protocol (broken, or from a mismatched build).
    const mute = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-mute-')), 'mute.mjs');
    fs.writeFileSync(mute, 'setInterval(() => {}, 1000);\n');
    const pool = new SandboxPool({
      childModule: mute,
      start: 'spawn',
      maxTasksPerChild: 100,
      maxMemoryMb: 512,
      logger: silent,
      startTimeoutMs: 1000,
    });
    const never = { aborted: false, reason: undefined, subscribe: () => () => undefined };
    const t0 = Date.now();
    const run = pool.run(
      {
        id: '1',
        name: 'diagnostics.noop_sandboxed',
        payload: {},
        attempt: 1,
        maxAttempts: 1,
        onProgress: () => {},
      },
      never,
    );
    const failed = expect(run).rejects.toThrow(/did not connect within 1000 ms/);
    await until(() => pool.pids().length === 1, 5000, 'the mute child to start');
    const [pid] = pool.pids();
    await failed;
    expect(Date.now() - t0).toBeLessThan(5000);
    await until(
      () => {
        try {
          process.kill(pid as number, 0);
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'ESRCH';
        }
      },
      5000,
      'the mute child to be killed',
    );
    await pool.close(500);
  });
});

describe('sandbox fork server', () => {
  const pools: SandboxPool[] = [];
  const pool = (opts: Partial<SandboxPoolOptions> = {}) => {
    const p = new SandboxPool({
      childModule: PROBE_CHILD,
      start: 'fork',
      maxTasksPerChild: 1,
      maxMemoryMb: 512,
      logger: silent,
      ...opts,
    });
    pools.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close(500)));
  });

  it('forks each child from one server; a child has its own pid, ppid, Math.random and random UUIDs', async () => {
    const p = pool();
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await p.run(task('whoami'), never));
    const who = runs.map(
      (r) => r.result as { pid: number; ppid: number; realPid: number; random: number; uuid: string },
    );
    for (const [i, w] of who.entries()) {
      expect(w.pid).toBe(w.realPid);
      expect(w.pid).toBe(runs[i]?.pid);
    }
    expect(new Set(who.map((w) => w.pid)).size).toBe(3);
    const servers = new Set(who.map((w) => w.ppid));
    expect(servers.size).toBe(1);
    const [server] = servers as Set<number>;
    expect(server).not.toBe(process.pid);
    expect(parentOf(server as number)).toBe(process.pid);
    expect(new Set(who.map((w) => w.random)).size).toBe(3);
    expect(new Set(who.map((w) => w.uuid)).size).toBe(3);
  });

  it('keeps the server and its children through a terminal interrupt (SIGINT to the process group)', async () => {
    const p = pool({ maxTasksPerChild: 100 });
    const first = await p.run(task('whoami'), never);
    const { ppid: server } = first.result as { ppid: number };
    process.kill(server, 'SIGINT');
    process.kill(first.pid, 'SIGINT');
    await sleep(200);
    expect((await p.run(task('whoami'), never)).pid).toBe(first.pid);
    expect(parentOf(first.pid)).toBe(server);
  });

  it('collects garbage in a child (V8 there has no background threads)', async () => {
    const { result } = await pool().run(task('allocate', { mb: 300 }), never);
    expect(result).toBeGreaterThan(0);
  }, 30_000);

  it("reports how a child ended: its exit code, or the uncaught error's", async () => {
    const p = pool({ maxTasksPerChild: 100 });
    await expect(p.run(task('exit', { code: 3 }), never)).rejects.toThrow(/exited during task exit \(3\)/);
    await expect(p.run(task('throwLater'), never)).rejects.toThrow(/exited during task throwLater \(1\)/);
    // The pool goes on with a fresh child.
    expect((await p.run(task('whoami'), never)).pid).toBeGreaterThan(0);
  });

  it('fails the task at once when the server cannot load its module', async () => {
    const t0 = Date.now();
    await expect(pool({ env: { PROBE_BROKEN: '1' } }).run(task('whoami'), never)).rejects.toThrow(
      /fork server exited (at start )?\(1\)/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('kills a server that never gets ready, and fails its task', async () => {
    const mute = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-mute-')), 'mute-server.mjs');
    fs.writeFileSync(mute, 'setInterval(() => {}, 1000);\n');
    const p = pool({ childModule: mute, startTimeoutMs: 1000 });
    await expect(p.run(task('whoami'), never)).rejects.toThrow(/did not connect|exited at start/);
    await until(() => processesWith(mute).length === 0, 5000, 'the mute server to be killed');
    await p.close(500);
  });

  describe('from the build', () => {
    const built = path.resolve('dist/main/task-child.js');
    let env: Record<string, string>;
    beforeAll(async () => {
      // A test that runs what production runs: build when dist/ is missing or older than the sources.
      const sources = execFileSync('git', ['ls-files', 'src'], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
      const builtAt = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0;
      if (sources.some((f) => fs.existsSync(f) && fs.statSync(f).mtimeMs > builtAt))
        execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-fork-build-')), 'omnivibe.db');
      const config = { dialect: 'sqlite' as const, file, busyTimeoutMs: 5000 };
      const db = openDatabase(config);
      await migrateToLatest(db.db, config);
      await db.close();
      env = { DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'silent' };
    }, 120_000);

    it('a child loads a handler the server did not preload, with its deps, after the fork', async () => {
      // video.render uses ctx.deps: the lean server leaves it, and the database layers, to the child.
      const p = pool({ childModule: built, env });
      await expect(p.run(task('video.render', { render_id: 424242, quality: 'low' }), never)).rejects.toThrow(
        'render 424242 does not exist',
      );
      const noop = await p.run(task('diagnostics.noop_sandboxed'), never);
      expect(noop.result).toMatchObject({ pid: noop.pid });
    }, 60_000);
  });
});

describe.each(
  queueBackends()
    .slice(0, 1)
    .flatMap((backend) => (['fork', 'spawn'] as SandboxStart[]).map((start) => ({ backend, start }))),
)('sandbox children: $backend, $start', ({ backend, start }) => {
  let h: Harness;
  beforeEach(() => {
    h = makeHarness(backend, { leaseMs: 5000 });
  });
  afterEach(async () => {
    await h.close();
  });

  const pidOf = async (id: string) => ((await h.queue.get(id))?.result as { pid: number }).pid;

  it('recycles a child whose RSS passes the memory ceiling', async () => {
    // Every Node process is past 1 MB: each task gets a fresh child.
    h.worker({
      concurrency: 1,
      queues: ['default'],
      sandbox: { childModule: CHILD_MODULE, start, maxTasksPerChild: 100, maxMemoryMb: 1 },
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.jobs.enqueue('diagnostics.noop_sandboxed', {})).id);
    for (const id of ids) await h.waitState(id, 'completed', 30_000);
    const pids = await Promise.all(ids.map(pidOf));
    expect(new Set(pids).size).toBe(3);
  });

  it('fails the attempt of a child killed mid-task, and runs the next task in a fresh child', async () => {
    const w = h.worker({
      concurrency: 1,
      queues: ['default'],
      sandbox: { childModule: CHILD_MODULE, start, maxTasksPerChild: 100, maxMemoryMb: 512 },
    });
    const first = await h.jobs.enqueue('diagnostics.noop_sandboxed', {});
    await h.waitState(first.id, 'completed', 30_000);
    const victim = await pidOf(first.id);
    const long = await h.jobs.enqueue('diagnostics.sleep_timeout_sandboxed', { ms: 5000, ignoreAbort: true });
    await h.waitState(long.id, 'active', 10_000);
    process.kill(victim, 'SIGKILL');
    await h.waitState(long.id, 'failed', 10_000);
    expect((await h.queue.get(long.id))?.error).toMatch(/exited during task .*SIGKILL/);
    const next = await h.jobs.enqueue('diagnostics.noop_sandboxed', {});
    await h.waitState(next.id, 'completed', 30_000);
    expect(await pidOf(next.id)).not.toBe(victim);
    await until(() => !w.childPids().includes(victim), 5000, 'the dead child to leave the pool');
  });
});
