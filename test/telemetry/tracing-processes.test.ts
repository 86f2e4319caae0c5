/**
 * One trace across processes: a request to `omnivibe serve` (continuing the caller's `traceparent`)
 * enqueues a sandboxed task; a separate `omnivibe worker` runs the attempt, in a sandbox child of its
 * own. Every process exports to the OTLP receiver inside the test; the spans must form one trace
 * request → enqueue → attempt → child, on the embedded queue (SQLite) and on BullMQ (PostgreSQL and
 * Redis). And a bad OTEL_* variable stops the process at start with a message that names it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../jobs/helpers.js';
import { embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { type OtlpReceiver, startOtlpReceiver } from '../support/otlp-receiver.js';
import { stopChildren } from '../support/processes.js';
import { freePort } from '../support/services.js';

const CLI = path.resolve('src/main/cli.ts');
const ADMIN_KEY = 'tracing-processes-admin-key-0123456789';
const SERVER = 2;
const PRODUCER = 4;
const CONSUMER = 5;

const modes = [
  ...(embeddedEnabled() ? ['embedded' as const] : []),
  ...(redisUrl() ? ['distributed' as const] : []),
];

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterAll(() => stopChildren(children));

function start(env: Record<string, string>, args: string[]): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString('utf8')));
  children.push(child);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
}

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(() => receiver.close());

describe.each(modes)('one trace across processes: %s', (mode) => {
  it('request → enqueue → attempt in a worker → its sandbox child', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-traces-'));
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'info',
      WORKER_METRICS_PORT: '0',
      JOBS_POLL_MS: '20',
      JOBS_CLEANUP_INTERVAL_S: '0',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    };
    if (mode === 'distributed') {
      const db = await freshDatabaseConfig('postgres');
      if (db.dialect !== 'postgres') throw new Error('expected PostgreSQL');
      env.DATABASE_URL = db.url;
      env.REDIS_URL = redisUrl() as string;
      env.JOBS_REDIS_PREFIX = `ov:q:trace${Math.random().toString(36).slice(2, 8)}`;
    }
    const migrate = start(env, ['migrate']);
    expect(await migrate.exited).toBe(0);
    const port = await freePort();
    const api = start({ ...env, PORT: String(port) }, ['serve']);
    // The worker speaks OTLP/JSON in embedded mode: both wire formats reach the receiver.
    const worker = start(mode === 'embedded' ? { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } : env, [
      'worker',
      '--concurrency',
      '2',
    ]);
    const base = `http://127.0.0.1:${port}`;
    await until(
      () =>
        fetch(`${base}/health`).then(
          (r) => r.ok,
          () => false,
        ),
      60_000,
      'the API answering',
    );

    const traceId = randomBytes(16).toString('hex');
    const caller = randomBytes(8).toString('hex');
    const res = await fetch(`${base}/api/v1/tasks`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${caller}-01`,
      },
      body: JSON.stringify({ name: 'diagnostics.noop_sandboxed', payload: {} }),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-trace-id')).toBe(traceId);
    const taskId = ((await res.json()) as { task_id: string }).task_id;

    const inTrace = (kind: number, name?: string) => (s: { traceId: string; kind: number; name: string }) =>
      s.traceId === traceId && s.kind === kind && (name === undefined || s.name === name);
    const server = await receiver.waitFor(inTrace(SERVER), 30_000);
    const producer = await receiver.waitFor(inTrace(PRODUCER), 30_000);
    const attempt = await receiver.waitFor(inTrace(CONSUMER), 30_000);
    const run = await receiver.waitFor(inTrace(1, 'run diagnostics.noop_sandboxed'), 30_000);

    expect(server.parentSpanId).toBe(caller);
    expect(server.pid).toBe(api.child.pid);
    expect(producer.parentSpanId).toBe(server.spanId);
    expect(producer.pid).toBe(api.child.pid);
    expect(attempt.parentSpanId).toBe(producer.spanId);
    expect(attempt.pid).toBe(worker.child.pid);
    expect(attempt.attributes['messaging.message.id']).toBe(taskId);
    expect(attempt.attributes['omnivibe.job.outcome']).toBe('completed');
    expect(run.parentSpanId).toBe(attempt.spanId);
    // The child is a process of its own: the task's result is its pid.
    let result: unknown;
    await until(async () => {
      const task = (await (
        await fetch(`${base}/api/v1/tasks/${taskId}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      ).json()) as { state: string; result: unknown };
      result = task.result;
      return task.state === 'completed';
    }, 30_000);
    expect(run.pid).toBe((result as { pid: number }).pid);
    expect([api.child.pid, worker.child.pid]).not.toContain(run.pid);

    if (mode === 'distributed') {
      // BullMQ's add is a Redis command inside the enqueue; its polling is never traced (no root Redis span).
      const redis = receiver.spans.filter((s) => s.name.startsWith('redis '));
      expect(redis.some((s) => s.traceId === traceId && s.parentSpanId === producer.spanId)).toBe(true);
      expect(redis.filter((s) => s.parentSpanId === '')).toEqual([]);
    } else {
      expect(receiver.requests.get('application/json')).toBeGreaterThan(0);
      expect(receiver.requests.get('application/x-protobuf')).toBeGreaterThan(0);
    }

    // The worker's lines about the attempt carry its trace and span ids.
    await until(
      () => worker.stdout().includes(`"trace_id":"${traceId}"`),
      10_000,
      'a worker line with the trace id',
    );
    const started = worker
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg?: string; trace_id?: string; span_id?: string; jobId?: string })
      .find((l) => l.msg === 'task started' && l.jobId === taskId);
    expect(started?.trace_id).toBe(traceId);
    expect(started?.span_id).toBe(attempt.spanId);
    await stopChildren([api.child, worker.child]);
  }, 120_000);
});

describe('bad tracing settings stop the process at start', () => {
  it.each([
    ['OTEL_TRACES_SAMPLER', 'sometimes'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'],
    ['OTEL_EXPORTER_OTLP_HEADERS', 'no-equals-sign'],
  ])(
    '%s=%s',
    async (name, value) => {
      const p = start({ DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ov-traces-')), [name]: value }, [
        'serve',
      ]);
      expect(await p.exited).toBe(2);
      expect(p.stderr()).toContain(`${name}=${JSON.stringify(value)} is invalid`);
    },
    60_000,
  );
});
