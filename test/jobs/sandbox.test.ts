/**
 * Sandbox children: the catalogue they load tasks from agrees with the task
 * catalogue; children are spawned processes, each leading its own process
 * group (a task's own processes die with it); how a child ended and what it
 * wrote to stderr reach the worker's log (not the terminal); a child that
 * cannot load or never connects fails its task fast; from the build a child
 * loads a handler with its deps; the memory ceiling recycles children, and a
 * child that dies mid-task fails that attempt and is replaced. Real children
 * (the TypeScript composition root under tsx, and the built one), on the first
 * queue backend of this run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/db/migrator.js';
import { openDatabase } from '../../src/db/database.js';
import { TaskTimeoutError } from '../../src/jobs/errors.js';
import {
  type AbortSource,
  SandboxPool,
  type SandboxPoolOptions,
} from '../../src/jobs/sandbox/sandbox-pool.js';
import { TASKS } from '../../src/tasks/index.js';
import { SANDBOX_CATALOGUE } from '../../src/tasks/sandbox-catalogue.js';
import { builtFile } from '../support/build.js';
import { CHILD_MODULE, type Harness, makeHarness, queueBackends, silent, until } from './helpers.js';

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
/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]. */
const stat = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
};
/** A logger that keeps its lines, to check what reached the worker's log. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  return { logger, text: () => lines.join('') };
}

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
      maxTasksPerChild: 100,
      maxMemoryMb: 512,
      logger: silent,
      startTimeoutMs: 1000,
    });
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
    await until(() => pool.pids().length === 1, 15_000, 'the mute child to start');
    const [pid] = pool.pids();
    await failed;
    expect(Date.now() - t0).toBeLessThan(15_000);
    await until(() => gone(pid as number), 5000, 'the mute child to be killed');
    await pool.close(500);
  });
});

describe('sandbox children', () => {
  const pools: SandboxPool[] = [];
  const pool = (opts: Partial<SandboxPoolOptions> = {}) => {
    const p = new SandboxPool({
      childModule: PROBE_CHILD,
      maxTasksPerChild: 100,
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

  it('spawns each child from the launcher, as the leader of its own process group', async () => {
    const p = pool();
    const { pid, result } = await p.run(task('whoami'), never);
    expect((result as { pid: number }).pid).toBe(pid);
    const [, ppid, pgrp] = stat(pid).map(Number);
    // Its parent is the launcher, a child of this process; a terminal's Ctrl-C to our group misses it.
    expect(Number(stat(ppid as number)[1])).toBe(process.pid);
    expect(pgrp).toBe(pid);
    expect(pgrp).not.toBe(Number(stat(process.pid)[2]));
  });

  it('kills the processes a task started along with its child (hard timeout)', async () => {
    const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-sleeper-')), 'pid');
    const p = pool();
    const run = p.run({ ...task('spawnSleeper', { pidFile }), hardTimeoutMs: 1500 }, never);
    await expect(run).rejects.toBeInstanceOf(TaskTimeoutError);
    const sleeper = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(sleeper).toBeGreaterThan(0);
    await until(() => gone(sleeper), 5000, 'the sleeper the task started to be killed');
  });

  it("reports how a child ended, its exit code or its uncaught error's, and logs what it wrote to stderr", async () => {
    const log = capturingLogger();
    const p = pool({ logger: log.logger });
    await expect(p.run(task('exit', { code: 3 }), never)).rejects.toThrow(/exited during task exit \(3\)/);
    await expect(p.run(task('throwLater'), never)).rejects.toThrow(/exited during task throwLater \(1\)/);
    expect(log.text()).toMatch(
      /"task":"throwLater".*probe: thrown outside the task.*sandbox child wrote to stderr/,
    );
    // The pool goes on with a fresh child.
    expect((await p.run(task('whoami'), never)).pid).toBeGreaterThan(0);
  });

  it('fails the task at once when the child cannot load its module, and logs why', async () => {
    const log = capturingLogger();
    const t0 = Date.now();
    await expect(
      pool({ env: { PROBE_BROKEN: '1' }, logger: log.logger }).run(task('whoami'), never),
    ).rejects.toThrow(/exited (before ready|during task whoami) \(1\)/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(log.text()).toContain('probe child: broken on purpose');
  });

  describe('from the build', () => {
    let built: string;
    let env: Record<string, string>;
    beforeAll(async () => {
      built = builtFile(path.resolve('dist/main/task-child.js'));
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-sandbox-build-')), 'omnivibe.db');
      const config = { dialect: 'sqlite' as const, file, busyTimeoutMs: 5000 };
      const db = openDatabase(config);
      await migrateToLatest(db.db, config);
      await db.close();
      env = { DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'silent' };
    }, 120_000);

    it('a child loads a handler with its deps, and a lean one', async () => {
      const p = pool({ childModule: built, env });
      await expect(p.run(task('video.render', { render_id: 424242, quality: 'low' }), never)).rejects.toThrow(
        'render 424242 does not exist',
      );
      const noop = await p.run(task('diagnostics.noop_sandboxed'), never);
      expect(noop.result).toMatchObject({ pid: noop.pid });
    }, 60_000);
  });
});

describe.each(queueBackends().slice(0, 1))('sandbox children in a worker: %s', (backend) => {
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
      sandbox: { childModule: CHILD_MODULE, maxTasksPerChild: 100, maxMemoryMb: 1 },
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
      sandbox: { childModule: CHILD_MODULE, maxTasksPerChild: 100, maxMemoryMb: 512 },
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
