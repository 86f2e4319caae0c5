/**
 * Sandbox children: the catalogue they load tasks from agrees with the task
 * catalogue, the memory ceiling recycles them, and a child that dies mid-task
 * fails that attempt and is replaced. Real children (the TypeScript composition
 * root under tsx), on the first queue backend of this run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SandboxPool } from '../../src/jobs/sandbox/sandbox-pool.js';
import { TASKS } from '../../src/tasks/index.js';
import { SANDBOX_CATALOGUE } from '../../src/tasks/sandbox-catalogue.js';
import {
  CHILD_MODULE,
  type Harness,
  makeHarness,
  queueBackends,
  SANDBOX_START,
  silent,
  until,
} from './helpers.js';

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

describe.each(queueBackends().slice(0, 1))('sandbox children: %s', (backend) => {
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
      sandbox: { childModule: CHILD_MODULE, start: SANDBOX_START, maxTasksPerChild: 100, maxMemoryMb: 1 },
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.jobs.enqueue('diagnostics.noop_sandboxed', {})).id);
    for (const id of ids) await h.waitState(id, 'completed', 30_000);
    const pids = await Promise.all(ids.map(pidOf));
    expect(new Set(pids).size).toBe(3);
  });

  it('fails the attempt of a child killed mid-task, and runs the next task in a fresh child', async () => {
    const w = h.worker({ concurrency: 1, queues: ['default'] });
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
