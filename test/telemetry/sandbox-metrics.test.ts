/**
 * What sandbox children do reaches their worker's metrics (children listen on no port): children
 * started and recycled (task budget, hard-timeout kill), and what a child's media pipeline
 * measures (a render's duration per preset) sent as reports over the sandbox socket. A report of
 * an unknown shape is logged, not counted.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { Worker } from '../../src/jobs/worker/worker.js';
import { createSystem, type System } from '../../src/main/system.js';
import { taskDepsFrom } from '../../src/main/worker.js';
import { sandboxMetrics } from '../../src/telemetry/job-metrics.js';
import { applyMediaReport, reportingObserver } from '../../src/telemetry/media-reports.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { CHILD_MODULE, until } from '../jobs/helpers.js';
import { seedContent, silentLogger, tempDir } from '../media/media-fixtures.js';
import { embeddedEnabled } from '../support/backends.js';
import { parseExposition, valueOf } from './exposition.js';

describe.runIf(embeddedEnabled())('sandbox children in the worker’s metrics', () => {
  let system: System;
  let worker: Worker;
  const dataDir = tempDir('ov-sandbox-metrics-');
  const env = {
    DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${path.join(dataDir, 'omnivibe.db')}`,
    LOG_LEVEL: 'silent',
    JOBS_CLEANUP_INTERVAL_S: '0',
  };

  beforeAll(async () => {
    const config = loadConfig(env);
    system = await createSystem(config, silentLogger);
    const metrics = system.telemetry?.metrics as Metrics;
    worker = new Worker({
      queue: system.jobs.leasing,
      registry: system.jobs.registry,
      deps: taskDepsFrom(system, system.jobs),
      logger: silentLogger,
      concurrency: 1,
      idleWaitMs: 50,
      sandbox: {
        childModule: CHILD_MODULE,
        maxTasksPerChild: 2,
        maxMemoryMb: 1024,
        env: { ...process.env, ...env },
        observer: sandboxMetrics(metrics, silentLogger),
      },
    }).start();
  });
  afterAll(async () => {
    await worker?.stop({ now: true });
    await system?.close();
  });

  const scrape = async () =>
    parseExposition((await (system.telemetry?.metrics as Metrics).expose(undefined)).body);
  const finished = async (ids: string[]) =>
    until(
      async () =>
        (await Promise.all(ids.map((id) => system.jobs.admin.get(id)))).every((j) =>
          ['completed', 'failed', 'dead'].includes(j?.state ?? ''),
        ),
      60_000,
      'tasks finished',
    );

  it('counts children started and recycled, by reason', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await system.jobs.enqueue('diagnostics.noop_sandboxed', {})).id);
    ids.push(
      (
        await system.jobs.enqueue(
          'diagnostics.sleep_timeout_sandboxed',
          { ms: 5000, ignoreAbort: true },
          { attempts: 1 },
        )
      ).id,
    );
    await finished(ids);
    const series = await scrape();
    // Five tasks at two per child: two children used up; the hard timeout killed the third's successor.
    expect(valueOf(series, 'omnivibe_sandbox_children_recycled_total', { reason: 'max_tasks' })).toBe(2);
    expect(valueOf(series, 'omnivibe_sandbox_children_recycled_total', { reason: 'killed' })).toBe(1);
    expect(valueOf(series, 'omnivibe_sandbox_children_started_total')).toBeGreaterThanOrEqual(4);
  }, 90_000);

  it('counts a render a child ran, by preset, from its report', async () => {
    const { contentId } = await seedContent(system.database.db, ['봄 신메뉴를 소개합니다.']);
    const { taskId } = await system.mediaRequests.requestRender(contentId, { silent: true, quality: 'low' });
    await finished([taskId]);
    expect((await system.jobs.admin.get(taskId))?.state).toBe('completed');
    const series = await scrape();
    const preset = series.find((s) => s.name === 'omnivibe_render_duration_seconds_count')?.labels.preset;
    expect(preset).toBeDefined();
    expect(
      valueOf(series, 'omnivibe_render_duration_seconds_count', { preset: preset as string, outcome: 'ok' }),
    ).toBe(1);
    expect(
      valueOf(series, 'omnivibe_render_duration_seconds_sum', { preset: preset as string, outcome: 'ok' }),
    ).toBeGreaterThan(0);
  }, 90_000);

  it('applies the reports a child sends and refuses other shapes', () => {
    const metrics = new Metrics({ runtime: false });
    const sent: unknown[] = [];
    const child = reportingObserver((r) => sent.push(JSON.parse(JSON.stringify(r))));
    child.vendorCall({
      provider: 'openai',
      model: 'tts-1',
      operation: 'tts',
      outcome: 'ok',
      latencyS: 0.2,
      units: 100,
      unit: 'characters',
      costUsd: 0.0015,
    });
    child.narrationFinished('openai', 'succeeded', 2, 0.97);
    child.renderFinished({ preset: 'tiktok', outcome: 'error', seconds: 3 });
    for (const r of sent) expect(applyMediaReport(metrics, r)).toBe(true);
    expect(applyMediaReport(metrics, { kind: 'render', run: { preset: 'tiktok' } })).toBe(false);
    expect(applyMediaReport(metrics, { kind: 'unknown' })).toBe(false);
    expect(applyMediaReport(metrics, 'text')).toBe(false);
    const warned: unknown[] = [];
    sandboxMetrics(metrics, { warn: (o: unknown) => void warned.push(o) }).report({ kind: 'nope' });
    expect(warned).toHaveLength(1);
    return metrics.expose(undefined).then(({ body }) => {
      const series = parseExposition(body);
      expect(valueOf(series, 'omnivibe_ai_cost_usd_total', { provider: 'openai' })).toBe(0.0015);
      expect(valueOf(series, 'omnivibe_narration_attempts_count', { provider: 'openai' })).toBe(1);
      expect(
        valueOf(series, 'omnivibe_render_duration_seconds_count', { preset: 'tiktok', outcome: 'error' }),
      ).toBe(1);
    });
  });
});
