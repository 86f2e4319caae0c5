import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeFeed } from '../../src/domain/changes.js';
import { loadConfig } from '../../src/config/config.js';
import type { DatabaseConfig } from '../../src/config/config.js';
import type { DatabaseHandle } from '../../src/db/database.js';
import { Jobs } from '../../src/jobs/jobs.js';
import type { JobQueue } from '../../src/jobs/types.js';
import { Worker } from '../../src/jobs/worker/worker.js';
import { createMediaServices, type MediaServices } from '../../src/media/media-services.js';
import type { TaskDeps } from '../../src/tasks/deps.js';
import { createTaskRegistry } from '../../src/tasks/index.js';
import { dbBackends, embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { CHILD_MODULE, makeQueue, until } from '../jobs/helpers.js';
import { openMigrated, seedContent, silentLogger, tempDir, espeakGeneration } from './media-fixtures.js';

type Mode = { db: 'sqlite' | 'postgres'; queue: 'sqlite' | 'bullmq' };
function modes(): Mode[] {
  const out: Mode[] = [];
  if (embeddedEnabled()) out.push({ db: 'sqlite', queue: 'sqlite' });
  if (redisUrl() && dbBackends().includes('postgres')) out.push({ db: 'postgres', queue: 'bullmq' });
  return out;
}

// SQLite with media in a local directory; PostgreSQL and BullMQ with media in object storage (test/support/s3.ts).
describe.each(modes())('media tasks through the job system (db $db, queue $queue)', (mode) => {
  let s3: S3TestTarget | undefined;
  let handle: DatabaseHandle;
  let queue: JobQueue;
  let jobs: Jobs;
  let deps: TaskDeps;
  let media: MediaServices;
  let env: Record<string, string>;
  const workers: Worker[] = [];

  function worker(extraEnv: Record<string, string> = {}) {
    const w = new Worker({
      queue,
      registry: jobs.registry,
      deps,
      logger: silentLogger,
      concurrency: 2,
      leaseMs: 5000,
      idleWaitMs: 100,
      sandbox: {
        childModule: CHILD_MODULE,
        maxTasksPerChild: 100,
        maxMemoryMb: 1024,
        env: { ...process.env, ...env, ...extraEnv },
      },
    }).start();
    workers.push(w);
    return w;
  }

  async function waitJob(id: string, state: 'completed' | 'failed', timeoutMs = 60_000) {
    await until(async () => (await queue.get(id))?.state === state, timeoutMs, `job ${id} ${state}`);
    return queue.get(id);
  }

  beforeAll(async () => {
    let dbConfig: DatabaseConfig;
    if (mode.db === 'sqlite') {
      const file = path.join(tempDir('ov-media-db-'), 'omnivibe.db');
      dbConfig = { dialect: 'sqlite', file, busyTimeoutMs: 5000 };
      env = { DATABASE_URL: `sqlite:${file}` };
    } else {
      dbConfig = await freshDatabaseConfig('postgres');
      env = { DATABASE_URL: (dbConfig as { url: string }).url };
    }
    if (mode.db === 'sqlite') env.MEDIA_DIR = tempDir('ov-media-tasks-');
    else {
      s3 = await startS3();
      Object.assign(env, s3.env);
    }
    env.LOG_LEVEL = 'silent';
    handle = await openMigrated(dbConfig);
    queue = makeQueue(mode.queue);
    jobs = new Jobs(queue, createTaskRegistry());
    const config = loadConfig({ ...env });
    const changes = new ChangeFeed(silentLogger);
    media = createMediaServices(config.media, handle.db, handle.dialect, silentLogger, { changes });
    expect(media.storage.kind).toBe(mode.db === 'sqlite' ? 'local' : 's3');
    deps = {
      config,
      logger: silentLogger,
      db: () => handle.db,
      dialect: handle.dialect,
      queue: () => queue,
      media: () => media,
      changes: () => changes,
    };
  });
  afterAll(async () => {
    for (const w of workers) await w.stop({ now: true });
    await media?.close();
    await queue?.close(1000);
    await handle?.close();
    await s3?.stop();
  });

  it('audio.generate then video.render (sandboxed): narration and MP4 stored, rows and content updated', async () => {
    worker();
    const { contentId } = await seedContent(handle.db, ['새 시즌이 시작됩니다.', '지금 확인하세요!']);
    const gen = await espeakGeneration(media.repo, contentId);
    const a = await jobs.enqueue(
      'audio.generate',
      { generation_id: gen.id, threshold: 0.9, max_attempts: 2 },
      { idempotencyKey: `audio:${gen.id}` },
    );
    const done = await waitJob(a.id, 'completed');
    expect(done?.result).toMatchObject({ status: 'succeeded', generationId: gen.id });
    expect(await media.repo.audioGeneration(gen.id)).toMatchObject({ status: 'succeeded', task_id: a.id });

    const render = await media.repo.createRender({
      content_id: contentId,
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    const r = await jobs.enqueue('video.render', { render_id: render.id, quality: 'low' });
    await waitJob(r.id, 'completed', 90_000);
    const row = await media.repo.render(render.id);
    expect(row).toMatchObject({ status: 'succeeded', task_id: r.id });
    expect((await media.storage.file(row?.output_path ?? 'missing'))?.size).toBeGreaterThan(1000);
    const content = await handle.db
      .selectFrom('contents')
      .select('status')
      .where('id', '=', contentId)
      .executeTakeFirst();
    expect(content?.status).toBe('rendered');
  }, 120_000);

  it('audio.batch narrates several contents and summarises, skipping what cannot be narrated', async () => {
    const one = await seedContent(handle.db, ['하나']);
    const two = await seedContent(handle.db, ['둘']);
    const empty = await seedContent(handle.db, []);
    const b = await jobs.enqueue('audio.batch', {
      content_ids: [one.contentId, two.contentId, empty.contentId, 999_999],
    });
    const done = await waitJob(b.id, 'completed');
    expect(done?.result).toMatchObject({ total: 4, succeeded: 2, skipped: 2, failed: 0 });
  }, 60_000);

  it('ffmpeg killed mid-render: retried, then failed with the tail of its stderr', async () => {
    for (const w of workers.splice(0)) await w.stop({ now: true });
    const dir = tempDir('ov-fake-ffmpeg-');
    const crashing = path.join(dir, 'ffmpeg');
    fs.writeFileSync(
      crashing,
      '#!/bin/sh\necho "frame=   12 fps=0.0 q=0.0 size=0kB encoder crashed here" >&2\nkill -9 $$\n',
    );
    fs.chmodSync(crashing, 0o755);
    worker({ FFMPEG_PATH: crashing });
    const { contentId } = await seedContent(handle.db, [{ text: '무음 렌더', duration_s: 1 }]);
    const render = await media.repo.createRender({
      content_id: contentId,
      preset: 'facebook',
      width: 1280,
      height: 720,
      fps: 30,
    });
    const r = await jobs.enqueue(
      'video.render',
      { render_id: render.id, quality: 'low', silent: true },
      { attempts: 2, backoff: { baseMs: 50, jitter: false } },
    );
    const job = await waitJob(r.id, 'failed', 60_000);
    expect(job?.attemptsMade).toBe(2);
    const row = await media.repo.render(render.id);
    expect(row?.status).toBe('failed');
    expect(row?.error).toMatch(/killed by SIGKILL/);
    expect(row?.error).toContain('encoder crashed here');
  }, 90_000);
});
