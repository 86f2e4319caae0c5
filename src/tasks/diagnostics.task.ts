/**
 * Diagnostic tasks for tests, benchmarks and operators (enqueued by admins only
 * through POST /api/v1/tasks): they do nothing, sleep, burn CPU or fail on demand.
 */
import { Type } from '@sinclair/typebox';
import { PermanentError, RetryAfterError } from '../jobs/errors.js';
import { defineTask } from '../jobs/registry.js';
import type { QueueName } from '../jobs/types.js';
import { burnCpu, noopPid, sleepHandler } from './diagnostics.handlers.js';

const Empty = Type.Object(
  { tag: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: true },
);

/** Returns at once: measures the queue's own overhead. */
export const noopTask = defineTask({
  name: 'diagnostics.noop',
  queue: 'default',
  payload: Empty,
  retry: { attempts: 1 },
  description: 'does nothing',
  async handler() {
    return null;
  },
});

/** The same in a sandbox child: measures the IPC overhead; reports the child's pid (recycling tests). */
export const noopSandboxedTask = defineTask({
  name: 'diagnostics.noop_sandboxed',
  queue: 'default',
  payload: Empty,
  retry: { attempts: 1 },
  hardTimeoutMs: 10_000,
  sandboxed: true,
  description: 'does nothing in a sandbox child; returns its pid',
  handler: noopPid,
});

const SleepPayload = Type.Object(
  {
    ms: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    /** Keep sleeping after the soft-timeout abort (tests the hard timeout). */
    ignoreAbort: Type.Optional(Type.Boolean()),
    /** Progress reports spread over the sleep. */
    steps: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  },
  { additionalProperties: false },
);

const sleepTask = (name: string, queue: QueueName, sandboxed: boolean) =>
  defineTask({
    name,
    queue,
    payload: SleepPayload,
    retry: { attempts: 1 },
    softTimeoutMs: 60_000,
    hardTimeoutMs: 65_000,
    sandboxed,
    description: `sleeps for ms (queue ${queue}${sandboxed ? ', sandboxed' : ''}), reporting progress`,
    handler: sleepHandler,
  });

export const sleepTaskDefault = sleepTask('diagnostics.sleep', 'default', false);
export const sleepTaskHigh = sleepTask('diagnostics.sleep_high', 'high_priority', false);
export const sleepTaskLow = sleepTask('diagnostics.sleep_low', 'low_priority', false);

/** Short timeouts for the timeout tests: soft at 300 ms, hard at 1 s. */
export const sleepTimeoutTask = defineTask({
  name: 'diagnostics.sleep_timeout',
  queue: 'default',
  payload: SleepPayload,
  retry: { attempts: 1 },
  softTimeoutMs: 300,
  hardTimeoutMs: 1000,
  description: 'sleeps with a 300 ms soft and 1 s hard timeout',
  handler: sleepHandler,
});

export const sleepTimeoutSandboxedTask = defineTask({
  ...sleepTimeoutTask,
  name: 'diagnostics.sleep_timeout_sandboxed',
  sandboxed: true,
  description: 'sleeps in a sandbox child with a 300 ms soft and 1 s hard timeout (the child is killed)',
});

export const cpuTask = defineTask({
  name: 'diagnostics.cpu',
  queue: 'default',
  payload: Type.Object(
    { ms: Type.Integer({ minimum: 0, maximum: 60_000 }) },
    { additionalProperties: false },
  ),
  retry: { attempts: 1 },
  // A busy loop hears no abort: the hard timeout kills its child 10 s after the time it was asked for.
  timeouts: (p) => ({ softTimeoutMs: p.ms + 5000, hardTimeoutMs: p.ms + 10_000 }),
  sandboxed: true,
  description: 'burns CPU for ms in a sandbox child',
  handler: burnCpu,
});

export const failTask = defineTask({
  name: 'diagnostics.fail',
  queue: 'default',
  payload: Type.Object(
    {
      mode: Type.Union([Type.Literal('transient'), Type.Literal('permanent'), Type.Literal('retry_after')]),
      /** Fail only this many attempts, then succeed (default: always fail). */
      times: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
      retryAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    },
    { additionalProperties: false },
  ),
  retry: { attempts: 5, backoff: { baseMs: 20, capMs: 600_000, jitter: true } },
  description: 'fails transiently, permanently or with retry-after (optionally only the first N attempts)',
  async handler(p, ctx) {
    if (p.times !== undefined && ctx.attempt > p.times) return { attempt: ctx.attempt };
    if (p.mode === 'permanent') throw new PermanentError('diagnostics: permanent failure');
    if (p.mode === 'retry_after')
      throw new RetryAfterError('diagnostics: retry later', p.retryAfterMs ?? 100);
    throw new Error(`diagnostics: transient failure on attempt ${ctx.attempt}`);
  },
});

export const diagnosticTasks = [
  noopTask,
  noopSandboxedTask,
  sleepTaskDefault,
  sleepTaskHigh,
  sleepTaskLow,
  sleepTimeoutTask,
  sleepTimeoutSandboxedTask,
  cpuTask,
  failTask,
];
