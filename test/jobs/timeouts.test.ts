/**
 * Timeouts: every sandboxed task has a hard timeout (the registry refuses one without); a render's
 * follow the length of what it renders within a floor and a ceiling; and the worker applies a task's
 * per-payload timeouts to each attempt.
 */
import { Type } from '@sinclair/typebox';
import { afterEach, describe, expect, it } from 'vitest';
import { Jobs } from '../../src/jobs/jobs.js';
import { defineTask, TaskRegistry } from '../../src/jobs/registry.js';
import type { JobQueue } from '../../src/jobs/types.js';
import { Worker } from '../../src/jobs/worker/worker.js';
import { TASKS } from '../../src/tasks/index.js';
import {
  RENDER_TIMEOUT_CEILING_MS,
  RENDER_TIMEOUT_FLOOR_MS,
  renderTimeouts,
} from '../../src/tasks/render-video.task.js';
import { makeQueue, queueBackends, silent, until } from './helpers.js';

describe('task timeouts', () => {
  it('gives every sandboxed task a hard timeout, and refuses a sandboxed task without one', () => {
    for (const t of TASKS.filter((d) => d.sandboxed))
      expect(t.hardTimeoutMs ?? t.timeouts, t.name).toBeDefined();
    const bare = defineTask({
      name: 'test.sandboxed_forever',
      queue: 'default',
      payload: Type.Object({}),
      sandboxed: true,
      handler: async () => null,
    });
    expect(() => new TaskRegistry([bare as never])).toThrow(/needs a hard timeout/);
  });

  it("sets a render's timeouts by the length of its video, within a floor and a ceiling", () => {
    const t20 = renderTimeouts({ duration_s: 20 });
    expect(t20.softTimeoutMs).toBe(60_000 + 20 * 10_000);
    expect(t20.hardTimeoutMs).toBeGreaterThan(t20.softTimeoutMs);
    expect(renderTimeouts({ duration_s: 1 }).softTimeoutMs).toBe(RENDER_TIMEOUT_FLOOR_MS);
    expect(renderTimeouts({ duration_s: 3600 }).softTimeoutMs).toBe(RENDER_TIMEOUT_CEILING_MS);
    const longer = renderTimeouts({ duration_s: 90 }).hardTimeoutMs;
    expect(longer).toBeGreaterThan(t20.hardTimeoutMs);
    // Three attempts of a hung 20-second render hold a slot well under the old 33 minutes.
    expect(3 * t20.hardTimeoutMs).toBeLessThan(15 * 60_000);
  });
});

describe.each(queueBackends().slice(0, 1))('per-payload timeouts in the worker: %s', (backend) => {
  let queue: JobQueue | undefined;
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.stop({ now: true });
    await queue?.close(1000);
  });

  it("ends an attempt at the hard timeout its payload sets, not the task's default", async () => {
    const hang = defineTask({
      name: 'test.hang',
      queue: 'default',
      payload: Type.Object({ hardMs: Type.Integer() }),
      retry: { attempts: 1 },
      softTimeoutMs: 60_000,
      hardTimeoutMs: 120_000,
      timeouts: (p) => ({ softTimeoutMs: p.hardMs / 2, hardTimeoutMs: p.hardMs }),
      // Ignores its signal: only the hard timeout ends it.
      handler: () => new Promise(() => undefined),
    });
    queue = makeQueue(backend);
    const registry = new TaskRegistry([hang as never]);
    worker = new Worker({ queue, registry, deps: {}, logger: silent, idleWaitMs: 100 }).start();
    const t0 = Date.now();
    const { id } = await new Jobs(queue, registry).enqueue('test.hang', { hardMs: 800 });
    await until(async () => (await queue?.get(id))?.state === 'failed', 20_000, 'the hung task to fail');
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect((await queue.get(id))?.error).toMatch(/hard timeout after 800 ms/);
  });
});
