/** The worker flags, declared once: commander parses each into its key, and a detached start passes them on intact. */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import {
  addWorkerFlags,
  resolveWorkerFlags,
  WORKER_FLAGS,
  type WorkerFlags,
  workerDefaults,
  workerFlagArgs,
} from '../../src/main/worker-flags.js';

const parse = (args: string[]) =>
  addWorkerFlags(
    new Command('worker')
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined }),
  )
    .parse(args, { from: 'user' })
    .opts<Partial<WorkerFlags>>();

describe('worker flags', () => {
  it('parses every flag into the key it is declared under', () => {
    const given: WorkerFlags = {
      queues: ['low_priority', 'default'],
      concurrency: 7,
      prefetch: 3,
      maxTasksPerChild: 1000,
      maxMemoryPerChild: 256,
      shutdownTimeout: 1500,
      metricsPort: 9464,
    };
    expect(Object.keys(WORKER_FLAGS).sort()).toEqual(Object.keys(given).sort());
    // A detached start passes the flags on as arguments: they come back as they were.
    expect(parse(workerFlagArgs(given))).toEqual(given);
  });

  it('takes what is not given from the configuration', () => {
    const cfg = loadConfig({ WORKER_CONCURRENCY: '9', WORKER_SHUTDOWN_TIMEOUT_MS: '1234' });
    const flags = resolveWorkerFlags(parse(['--prefetch', '2']), cfg);
    expect(flags).toEqual({ ...workerDefaults(cfg), prefetch: 2 });
    expect(flags).toMatchObject({
      concurrency: 9,
      shutdownTimeout: 1234,
      queues: ['high_priority', 'default', 'low_priority'],
    });
  });

  it('refuses bad values, naming the flag', () => {
    expect(() => parse(['--concurrency', '0'])).toThrow(/--concurrency/);
    expect(() => parse(['--concurrency', '1.5'])).toThrow(/--concurrency/);
    expect(() => parse(['--queues', 'default,urgent'])).toThrow(/--queues/);
  });
});
