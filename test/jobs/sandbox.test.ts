/**
 * Sandbox children: the catalogue they load tasks from agrees with the task
 * catalogue, the memory ceiling recycles them, and a child that dies mid-task
 * fails that attempt and is replaced. Real children (the TypeScript composition
 * root under tsx), on the first queue backend of this run.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TASKS } from '../../src/tasks/index.js';
import { SANDBOX_CATALOGUE } from '../../src/tasks/sandbox-catalogue.js';
import { CHILD_MODULE, type Harness, makeHarness, queueBackends, until } from './helpers.js';

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
      sandbox: { childModule: CHILD_MODULE, maxTasksPerChild: 100, maxMemoryMb: 1 },
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
