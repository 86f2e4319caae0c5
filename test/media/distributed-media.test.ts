/**
 * Distributed end to end: an API process (`omnivibe serve`) and a worker
 * process (`omnivibe worker`), each with its OWN data directory, sharing
 * PostgreSQL, Redis and object storage (an S3-compatible server started here,
 * see test/support/s3.ts). A picture is uploaded to the API, narration and a
 * render are requested there and made by the worker, and the MP4 is
 * downloaded from the API with Range requests. Nothing assumes a shared disk.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import { openDatabase } from '../../src/db/database.js';
import type { Db } from '../../src/db/types.js';
import { dbBackends, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { freePort } from '../support/services.js';
import { makeImage } from './asset-fixtures.js';
import { seedContent, tempDir } from './media-fixtures.js';
import { stopChildren } from '../support/processes.js';

const CLI = path.resolve('src/main/cli.ts');
const ADMIN_KEY = 'ov-dist-media-admin-key-0123456789';
const enabled = redisUrl() !== null && dbBackends().includes('postgres');

describe.runIf(enabled)('media, distributed: API and worker on different disks', () => {
  let s3: S3TestTarget;
  const children: ChildProcess[] = [];
  const apiDir = tempDir('ov-dist-api-');
  const workerDir = tempDir('ov-dist-worker-');
  let base = '';
  let env: Record<string, string> = {};
  let dbUrl = '';
  let pgConfig: DatabaseConfig;

  function start(args: string[], dataDir: string, extra: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { ...process.env, ...env, DATA_DIR: dataDir, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    const keep = (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', (code, sig) => {
      if (code !== 0 && sig === null && !stopping)
        process.stderr.write(`${args[0]} exited ${code}:\n${log}\n`);
    });
    children.push(child);
    return child;
  }
  let stopping = false;

  beforeAll(async () => {
    s3 = await startS3();
    pgConfig = await freshDatabaseConfig('postgres');
    dbUrl = (pgConfig as { url: string }).url;
    const port = await freePort();
    base = `http://127.0.0.1:${port}/api/v1`;
    env = {
      ...s3.env,
      DATABASE_URL: dbUrl,
      REDIS_URL: redisUrl() ?? '',
      JOBS_REDIS_PREFIX: `ov:q:dm${Math.random().toString(36).slice(2, 8)}`,
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      LOG_LEVEL: 'warn',
      NARRATION_VERIFIER: 'acoustic',
    };
    start(['serve'], apiDir, { PORT: String(port) });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error('the API did not start');
      await new Promise((r) => setTimeout(r, 250));
    }
    start(['worker', '--concurrency', '2'], workerDir);
  }, 90_000);

  afterAll(async () => {
    stopping = true;
    await stopChildren(children);
    await s3?.stop();
  });

  const headers = { authorization: `Bearer ${ADMIN_KEY}` };
  const json = async <T>(
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  async function finished(taskId: string): Promise<string> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const { body } = await json<{ state: string }>('GET', `/tasks/${taskId}`);
      if (['completed', 'failed', 'cancelled'].includes(body.state)) return body.state;
      if (Date.now() > deadline) throw new Error(`task ${taskId} still ${body.state}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  /** Every regular file under a directory. */
  const filesUnder = (dir: string): string[] =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir, { recursive: true, encoding: 'utf8' })
          .filter((f) => fs.statSync(path.join(dir, f)).isFile())
      : [];

  it('a render requested at the API, made by the worker, downloads from the API with Range', async () => {
    const db = openDatabase(pgConfig);
    try {
      await runTest(db.db);
    } finally {
      await db.close();
    }
  }, 300_000);

  async function runTest(db: Db) {
    const seeded = await seedContent(db, ['봄이 왔습니다.', '벚꽃 라떼를 만나보세요.'], {
      platform: 'tiktok',
    });
    // The picture goes up to the API process...
    const form = new FormData();
    form.append(
      'file',
      new Blob([fs.readFileSync(makeImage({ w: 320, h: 240, color: '0xE01010' }))]),
      'spring.png',
    );
    const up = await fetch(`${base}/clients/${seeded.clientId}/assets`, {
      method: 'POST',
      headers,
      body: form,
    });
    expect(up.status).toBe(201);
    const asset = (await up.json()) as { id: number };
    await db
      .updateTable('script_blocks')
      .set({ background: `asset:${asset.id}` })
      .where('content_id', '=', seeded.contentId)
      .where('sequence', '=', 1)
      .execute();
    // ...narration and the render are made by the worker...
    const audio = await json<{ task_id: string }>('POST', `/contents/${seeded.contentId}/audio`, {
      provider: 'espeak',
    });
    expect(audio.status).toBe(202);
    expect(await finished(audio.body.task_id)).toBe('completed');
    const render = await json<{ task_id: string; render_id: number }>(
      'POST',
      `/contents/${seeded.contentId}/renders`,
      {
        quality: 'low',
      },
    );
    expect(render.status).toBe(202);
    expect(await finished(render.body.task_id)).toBe('completed');
    const r = await json<{ status: string; size_bytes: number; download_url: string }>(
      'GET',
      `/renders/${render.body.render_id}`,
    );
    expect(r.body.status).toBe('succeeded');

    // ...and the API serves it from object storage, whole and by range.
    const whole = await fetch(`${base.replace('/api/v1', '')}${r.body.download_url}`, { headers });
    expect(whole.status).toBe(200);
    const bytes = Buffer.from(await whole.arrayBuffer());
    expect(bytes.length).toBe(r.body.size_bytes);
    expect(bytes.subarray(4, 8).toString('latin1')).toBe('ftyp');
    const part = await fetch(`${base.replace('/api/v1', '')}${r.body.download_url}`, {
      headers: { ...headers, range: 'bytes=100-1099' },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-1099/${bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 1100))).toBe(true);
    const srt = await fetch(`${base}/renders/${render.body.render_id}/captions.srt`, { headers });
    expect(srt.status).toBe(200);
    expect(await srt.text()).toContain('벚꽃 라떼를 만나보세요.');

    // Neither process kept media on its own disk: the worker's scratch is emptied, the API wrote none.
    expect(filesUnder(path.join(apiDir, 'media'))).toEqual([]);
    expect(filesUnder(path.join(workerDir, 'media'))).toEqual([]);
    expect(filesUnder(path.join(workerDir, 'scratch'))).toEqual([]);
  }
});
