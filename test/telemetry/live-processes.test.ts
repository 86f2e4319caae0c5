/**
 * The live summary over real processes: two `omnivibe serve` and two `omnivibe worker`, started
 * with the CLI on one data directory (embedded) or on PostgreSQL and Redis (distributed), each
 * API sent part of the requests; one summary adds them all up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Summary } from '../../src/telemetry/live-summary.js';
import { until } from '../jobs/helpers.js';
import { embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { stopChildren } from '../support/processes.js';

const CLI = path.resolve('src/main/cli.ts');
const ADMIN_KEY = 'live-processes-admin-key-0123456789';

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

const modes = [
  ...(embeddedEnabled() ? ['embedded' as const] : []),
  ...(redisUrl() ? ['distributed' as const] : []),
];

describe.each(modes)('live summary over processes: %s', (mode) => {
  const children: ChildProcess[] = [];
  afterAll(() => stopChildren(children));

  const start = (env: Record<string, string>, args: string[]) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('exit', (code) => {
      if (code !== 0 && code !== null)
        process.stderr.write(`omnivibe ${args[0]} exited ${code}: ${stderr}\n`);
    });
    children.push(child);
    return child;
  };

  it('two APIs and two workers add up in one summary', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-live-'));
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'warn',
      TELEMETRY_PUBLISH_MS: '200',
      WORKER_METRICS_PORT: '0',
      JOBS_POLL_MS: '20',
      JOBS_CLEANUP_INTERVAL_S: '0',
    };
    if (mode === 'distributed') {
      const db = await freshDatabaseConfig('postgres');
      if (db.dialect !== 'postgres') throw new Error('expected PostgreSQL');
      env.DATABASE_URL = db.url;
      env.REDIS_URL = redisUrl() as string;
      env.JOBS_REDIS_PREFIX = `ov:q:live${Math.random().toString(36).slice(2, 8)}`;
    }
    // Migrations first, so the four processes do not race to apply them.
    await new Promise<void>((resolve, reject) => {
      const m = start(env, ['migrate']);
      m.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`migrate exited ${code}`))));
    });
    const ports = [await freePort(), await freePort()];
    for (const port of ports) start({ ...env, PORT: String(port) }, ['serve']);
    for (let i = 0; i < 2; i++) start(env, ['worker', '--concurrency', '2']);
    const auth = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
    const base = (i: number) => `http://127.0.0.1:${ports[i]}`;
    await until(
      async () => {
        const up = await Promise.all(
          ports.map((_, i) =>
            fetch(`${base(i)}/health`).then(
              (r) => r.ok,
              () => false,
            ),
          ),
        );
        return up.every(Boolean);
      },
      60_000,
      'both APIs answering',
    );

    // API 0 gets 30 requests, API 1 gets 20; 10 tasks through API 1.
    for (let i = 0; i < 30; i++)
      expect((await fetch(`${base(0)}/api/v1/campaigns`, { headers: auth })).status).toBe(200);
    for (let i = 0; i < 20; i++)
      expect((await fetch(`${base(1)}/api/v1/clients`, { headers: auth })).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${base(1)}/api/v1/tasks`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ name: 'diagnostics.noop', payload: {} }),
      });
      expect(r.status).toBe(202);
    }

    let summary: Summary | undefined;
    await until(
      async () => {
        const r = await fetch(`${base(0)}/api/v1/observability/summary?window=5m`, { headers: auth });
        const s = (await r.json()) as Summary;
        summary = s;
        const routes = s.http.routes;
        const count = (method: string, route: string) =>
          routes.find((x) => x.method === method && x.route === route)?.requests ?? 0;
        const noop = s.jobs.tasks.find((t) => t.task === 'diagnostics.noop');
        return (
          s.processes === 4 &&
          count('GET', '/api/v1/campaigns') === 30 &&
          count('GET', '/api/v1/clients') === 20 &&
          count('POST', '/api/v1/tasks') === 10 &&
          noop?.completed === 10
        );
      },
      30_000,
      'every process in the summary',
    );
    expect(summary?.jobs.finished).toBe(10);
    expect(summary?.http.p99_ms).toBeGreaterThan(0);
  }, 120_000);
});
