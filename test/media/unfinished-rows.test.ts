/**
 * Rows left behind (issue 11): a render or narration whose task is cancelled or
 * goes dead ends `failed` with the reason, never `queued` or `running` for ever;
 * on read, in the cleanup sweep, and at once where the engine reports the end.
 * Each backend: embedded (SQLite queue) and BullMQ on Redis (PostgreSQL when present).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimedJob } from '../../src/jobs/types.js';
import { taskDepsFrom } from '../../src/main/worker.js';
import { cleanupTask } from '../../src/tasks/cleanup.task.js';
import { makeTestApp, queueEnv, type TestApp } from '../support/app.js';
import { dbBackends } from '../support/backends.js';
import { queueBackends, until } from '../jobs/helpers.js';
import { seedContent } from './media-fixtures.js';

describe.each(queueBackends())('media rows of ended tasks (%s queue)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend === 'bullmq' && dbBackends().includes('postgres') ? 'postgres' : 'sqlite', {
      ...queueEnv(backend),
      // No worker runs here: the test plays the worker. One lost lease makes a task dead.
      JOBS_LEASE_MS: '1000',
      JOBS_MAX_STALLS: '0',
      JOBS_CLEANUP_INTERVAL_S: '0',
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  const post = (url: string, payload: object) =>
    t.app.inject({ method: 'POST', url: `/api/v1${url}`, payload, headers: t.as('editor') });
  const get = async (url: string) =>
    (await t.app.inject({ method: 'GET', url: `/api/v1${url}`, headers: t.as('viewer') })).json<{
      status: string;
      error: string | null;
      finished_at: string | null;
    }>();
  const stored = async (renderId: number) => t.system.media.repo.render(renderId);

  /** A render queued through the API, claimed by a "worker" that started it (its row `running`). */
  async function startedRender(): Promise<{ taskId: string; renderId: number; claimed: ClaimedJob }> {
    const { contentId } = await seedContent(t.system.database.db, ['렌더링이 멈춘 영상입니다.']);
    const res = await post(`/contents/${contentId}/renders`, { silent: true });
    expect(res.statusCode).toBe(202);
    const { task_id: taskId, render_id: renderId } = res.json<{ task_id: string; render_id: number }>();
    const [claimed] = await t.system.jobs.leasing.claim({ queues: ['default'], max: 1, workerId: 'ghost' });
    expect(claimed?.id).toBe(taskId);
    // The ghost worker starts it, as a worker notes a start with its next claim (until then the job is
    // only prefetched, and a lost worker's prefetched job goes back to its queue without a stall).
    const started = claimed as ClaimedJob;
    await t.system.jobs.leasing.claim({
      started: [{ job: started, startedAt: started.startedAt }],
      queues: ['default'],
      max: 0,
      workerId: 'ghost',
    });
    // What RenderService.render() writes first.
    await t.system.media.repo.updateRender(renderId, { status: 'running', task_id: taskId });
    return { taskId, renderId, claimed: claimed as ClaimedJob };
  }

  const sweep = async () =>
    (
      await cleanupTask.handler({}, { deps: taskDepsFrom(t.system, t.system.jobs) } as Parameters<
        typeof cleanupTask.handler
      >[1])
    ).media_rows_settled;

  it('the cleanup sweep ends a narration whose waiting task was cancelled', async () => {
    const { contentId } = await seedContent(t.system.database.db, ['취소될 내레이션입니다.']);
    const res = await post(`/contents/${contentId}/audio`, { provider: 'espeak' });
    expect(res.statusCode).toBe(202);
    const { task_id: taskId, generation_id: id } = res.json<{ task_id: string; generation_id: number }>();
    // Editors enqueue narration, so they may cancel it.
    const cancel = await post(`/tasks/${taskId}/cancel`, {});
    expect(cancel.json<{ state: string }>().state).toBe('cancelled');
    expect((await t.system.media.repo.audioGeneration(id))?.status).toBe('queued');
    expect(await sweep()).toBe(1);
    const row = await t.system.media.repo.audioGeneration(id);
    expect(row).toMatchObject({ status: 'failed', error: `cancelled: task ${taskId} was cancelled` });
    expect(row?.finished_at).not.toBeNull();
    expect((await get(`/audio-generations/${id}`)).status).toBe('failed');
    expect(await sweep()).toBe(0);
  });

  it('reading a render whose waiting task was cancelled ends it failed (cancelled)', async () => {
    const { contentId } = await seedContent(t.system.database.db, ['취소될 렌더입니다.']);
    const res = await post(`/contents/${contentId}/renders`, { silent: true });
    const { task_id: taskId, render_id: renderId } = res.json<{ task_id: string; render_id: number }>();
    expect((await get(`/renders/${renderId}`)).status).toBe('queued');
    expect((await post(`/tasks/${taskId}/cancel`, {})).statusCode).toBe(200);
    const view = await get(`/renders/${renderId}`);
    expect(view).toMatchObject({ status: 'failed', error: `cancelled: task ${taskId} was cancelled` });
    expect((await stored(renderId))?.status).toBe('failed');
  });

  it('a running render whose active task is cancelled ends failed (cancelled)', async () => {
    const { taskId, renderId, claimed } = await startedRender();
    expect((await post(`/tasks/${taskId}/cancel`, {})).statusCode).toBe(200);
    // The worker sees the request, aborts the handler and ends the task cancelled.
    await t.system.jobs.leasing.cancelActive(claimed, 'ghost');
    expect((await t.system.jobs.admin.get(taskId))?.state).toBe('cancelled');
    const view = await get(`/renders/${renderId}`);
    expect(view.status).toBe('failed');
    expect(view.error).toMatch(/cancelled/);
    expect((await stored(renderId))?.status).toBe('failed');
  });

  it('a running render whose worker was lost until its task went dead ends failed', async () => {
    const { taskId, renderId } = await startedRender();
    await until(
      async () => {
        await t.system.jobs.leasing.recoverStalled();
        return (await t.system.jobs.admin.get(taskId))?.state === 'dead';
      },
      15_000,
      'the task dead',
    );
    const view = await get(`/renders/${renderId}`);
    expect(view.status).toBe('failed');
    expect(view.error).toMatch(new RegExp(`^task ${taskId} died: its worker was lost`));
    expect((await stored(renderId))?.status).toBe('failed');
  });

  it('leaves rows of tasks that may still finish them alone', async () => {
    const { contentId } = await seedContent(t.system.database.db, ['아직 기다리는 렌더입니다.']);
    const res = await post(`/contents/${contentId}/renders`, { silent: true });
    const { render_id: renderId } = res.json<{ render_id: number }>();
    const result = await cleanupTask.handler({}, {
      deps: taskDepsFrom(t.system, t.system.jobs),
    } as Parameters<typeof cleanupTask.handler>[1]);
    expect(result.media_rows_settled).toBe(0);
    expect((await get(`/renders/${renderId}`)).status).toBe('queued');
  });
});
