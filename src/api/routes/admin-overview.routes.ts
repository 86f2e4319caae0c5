/**
 * The overview page of the operator dashboard, /admin/overview: the live figures of every
 * process as charts over the last hour (requests/s, latency P50/P90/P99, error rate, finished
 * and failed attempts per queue, waiting jobs and the oldest wait per queue, cache hit rate, AI
 * spend per provider), kept current by server-sent events.
 *
 * The charts are drawn in the browser by uPlot (the `uplot` npm package) and the page's own
 * script (assets/admin/overview.js), both served from here: the page loads nothing from another
 * origin, and its CSP allows scripts, styles and connections from this origin only (no inline
 * script). Like the other /admin pages it takes the API key as an HTTP Basic password, so its
 * data comes from /admin/overview/series and /admin/overview/stream (viewer), the same series as
 * GET /api/v1/observability/series.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { LiveSummary } from '../../telemetry/live-summary.js';
import { SeriesQuery, seriesRange, streamEvents } from './observability.routes.js';

export interface AdminOverviewRoutesOptions {
  summary: LiveSummary;
  /** The shortest default bucket, ms: the processes' publish interval. */
  minStepMs: number;
  /** How often the stream sends the newest buckets, ms (default 5000). */
  streamEveryMs?: number;
}

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";

/** The browser files the page loads, read once when the routes are registered. */
function readAssets(): Record<string, { type: string; body: Buffer }> {
  const uplotDir = path.dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  // The same relative path from src/api/routes and dist/api/routes.
  const own = fileURLToPath(new URL('../../../assets/admin/', import.meta.url));
  const js = 'text/javascript; charset=utf-8';
  return {
    'uplot.js': { type: js, body: fs.readFileSync(path.join(uplotDir, 'dist', 'uPlot.iife.min.js')) },
    'uplot.css': {
      type: 'text/css; charset=utf-8',
      body: fs.readFileSync(path.join(uplotDir, 'dist', 'uPlot.min.css')),
    },
    'overview.js': { type: js, body: fs.readFileSync(path.join(own, 'overview.js')) },
  };
}

const PAGE_STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}a{color:#0645ad}
.muted{color:#777}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1rem 1.5rem}
.chart h2{font-size:1rem;margin:.5rem 0 .25rem}.chart .now{font-weight:normal;color:#555;margin-left:.5rem}`;

function page(window: string, stepS: number): string {
  // Nothing here comes from the request but a validated window name and a number.
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Overview · OmniVibe Pro</title>
    <link rel="stylesheet" href="/admin/assets/uplot.css" />
    <style>${PAGE_STYLE}</style>
    <script src="/admin/assets/uplot.js" defer></script>
    <script src="/admin/assets/overview.js" defer></script>
  </head>
  <body>
    <p><a href="/admin">jobs</a> · <b>overview</b></p>
    <h1>Overview <span class="muted">· every API and worker process · last ${window}</span></h1>
    <p class="muted" id="status">Loading…</p>
    <main id="overview" class="grid" data-window="${window}" data-step="${stepS}"></main>
  </body>
</html>`;
}

function secure(reply: FastifyReply, csp = CSP): FastifyReply {
  return reply
    .header('content-security-policy', csp)
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff');
}

export const adminOverviewRoutes: FastifyPluginAsyncTypebox<AdminOverviewRoutesOptions> = async (
  app,
  opts,
) => {
  const assets = readAssets();
  const schema = { hide: true };

  app.get('/overview', { schema: { ...schema, querystring: SeriesQuery } }, async (req, reply) => {
    const { stepMs } = seriesRange(req.query, opts.minStepMs);
    return secure(reply)
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(page(req.query.window ?? '1h', stepMs / 1000));
  });

  app.get('/overview/series', { schema: { ...schema, querystring: SeriesQuery } }, async (req, reply) => {
    const { windowMs, stepMs } = seriesRange(req.query, opts.minStepMs);
    secure(reply).header('cache-control', 'no-store');
    return opts.summary.series(windowMs, stepMs);
  });

  // The newest buckets only (the page merges them into what it drew): three steps, or 30 s.
  app.get('/overview/stream', { schema: { ...schema, querystring: SeriesQuery } }, async (req, reply) => {
    const { stepMs } = seriesRange(req.query, opts.minStepMs);
    const recentMs = Math.max(3 * stepMs, 30_000);
    await streamEvents(req, reply, 'series', opts.streamEveryMs ?? 5000, () =>
      opts.summary.series(recentMs, stepMs),
    );
  });

  for (const [name, asset] of Object.entries(assets))
    app.get(`/assets/${name}`, { schema }, async (_req, reply) =>
      secure(reply, "default-src 'none'")
        .header('cache-control', 'private, max-age=3600')
        .type(asset.type)
        .send(asset.body),
    );
};
