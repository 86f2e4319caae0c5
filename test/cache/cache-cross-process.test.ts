/**
 * Cross-process freshness, as users run it: `omnivibe serve` and a separate
 * `omnivibe worker` (real CLI processes) on the same data. Tasks run by the worker
 * (stats.aggregate and narration in the worker process, a render in its sandbox child)
 * change what the server has cached; the server's next read shows it, long before the
 * TTL (300 s). Embedded: SQLite + memory caches following the shared generation log.
 * Distributed: PostgreSQL + BullMQ + the Redis cache with its L1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends, embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { freePort } from '../support/services.js';
import { sleep } from './helpers.js';
import { stopChildren } from '../support/processes.js';

const CLI = path.resolve('src/main/cli.ts');
const ADMIN_KEY = 'ov_cross_process_admin_key_0123456789';

type Mode = 'embedded' | 'distributed';
const modes = (): Mode[] => [
  ...(embeddedEnabled() ? (['embedded'] as const) : []),
  ...(redisUrl() !== null && dbBackends().includes('postgres') ? (['distributed'] as const) : []),
];

describe.each(modes())('serve + a separate worker (%s)', (mode) => {
  const children: ChildProcess[] = [];
  let dir: string;
  let env: Record<string, string | undefined>;
  let base: string;

  const start = (command: string[], name: string) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...command], {
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const echo = (d: Buffer) => {
      if (process.env.OV_TEST_WORKER_LOG) process.stderr.write(`[${name}] ${d}`);
    };
    child.stdout?.on('data', echo);
    child.stderr?.on('data', echo);
    children.push(child);
    return child;
  };
  const api = async <T = Record<string, unknown>>(
    method: string,
    url: string,
    body?: unknown,
  ): Promise<T> => {
    const res = await fetch(`${base}/api/v1${url}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
    return json as T;
  };
  /** Waits for a task to finish (GET /tasks/{id} is not cached); returns when the API saw it complete. */
  const finished = async (taskId: string) => {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const t = await api('GET', `/tasks/${taskId}`);
      if (t.state === 'completed') return Date.now();
      if (t.state === 'failed') throw new Error(`task ${taskId} failed: ${JSON.stringify(t)}`);
      if (Date.now() > deadline) throw new Error(`task ${taskId} not done: ${JSON.stringify(t)}`);
      await sleep(20);
    }
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-cross-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dir,
      MEDIA_DIR: path.join(dir, 'media'),
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'warn',
      JOBS_POLL_MS: '20',
      RATE_LIMIT_WRITES_PER_MIN: '100000',
      CACHE_MODE: 'auto',
    };
    delete env.REDIS_URL;
    delete env.CACHE_REDIS_URL;
    if (mode === 'embedded') {
      env.DATABASE_URL = `sqlite:${path.join(dir, 'omnivibe.db')}`;
    } else {
      const db = await freshDatabaseConfig('postgres');
      env.DATABASE_URL = (db as { url: string }).url;
      env.REDIS_URL = redisUrl() as string;
      env.CACHE_REDIS_URL = `${redisUrl()}/7`;
      env.JOBS_REDIS_PREFIX = `ov:q:x${Math.random().toString(36).slice(2, 8)}`;
    }
    start(['serve'], 'serve');
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error('serve did not start');
      await sleep(100);
    }
  }, 60_000);

  afterAll(async () => {
    await stopChildren(children);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("shows the worker's and its sandbox child's writes on the server's next read", async () => {
    type Created = { id: number };
    type Queued = { task_id: string };
    const client = await api<Created>('POST', '/clients', { name: 'cross' });
    const campaign = await api<Created>('POST', '/campaigns', {
      client_id: client.id,
      name: 'cross',
      platform: 'tiktok',
    });
    const content = await api<Created>('POST', `/campaigns/${campaign.id}/contents`, { title: 'cross' });
    await api('PUT', `/contents/${content.id}/script`, {
      blocks: [
        { kind: 'hook', text: '안녕하세요.', duration_s: 1 },
        { kind: 'cta', text: '감사합니다.', duration_s: 1 },
      ],
    });
    await api('POST', `/contents/${content.id}/metrics`, {
      metrics: [{ recorded_at: '2026-03-01T10:00:00Z', views: 100, likes: 10, comments: 1, shares: 1 }],
    });
    // The server caches what it answers now.
    const status = async () => (await api('GET', `/contents/${content.id}`)).status as string;
    const listed = async () =>
      ((await api('GET', `/campaigns/${campaign.id}/contents`)).items as { status: string }[])[0]?.status;
    const statsDays = async () =>
      ((await api('GET', `/campaigns/${campaign.id}/stats`)).days as unknown[]).length;
    expect(await status()).toBe('scripted');
    expect(await listed()).toBe('scripted');
    expect(await statsDays()).toBe(0);

    start(['worker', '--concurrency', '2'], 'worker');
    const stats = await api<Queued>('POST', '/tasks', {
      name: 'stats.aggregate',
      payload: { campaign_id: campaign.id },
    });
    await finished(stats.task_id);
    expect(await statsDays()).toBe(1);

    const narration = await api<Queued>('POST', `/contents/${content.id}/audio`, { provider: 'espeak' });
    await finished(narration.task_id);
    expect(await status()).toBe('audio_ready');
    expect(await listed()).toBe('audio_ready');

    // video.render runs in the worker's sandbox child: its write reaches the server too.
    const render = await api<Queued>('POST', `/contents/${content.id}/renders`, { quality: 'low' });
    await finished(render.task_id);
    expect(await status()).toBe('rendered');
    expect(await listed()).toBe('rendered');
  }, 150_000);
});
