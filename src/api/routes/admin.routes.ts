/**
 * The operator dashboard at /admin: the job system at a glance in a browser, on
 * either backend (the Flower of the system this replaces). It shows the queues
 * (counts by state, throughput of the last minute, age of the oldest waiting
 * task), the workers and their heartbeats, and the latest tasks by state and
 * queue. Each task has a page with its payload, result, error and every attempt's
 * timing. Buttons retry and cancel tasks (editor) and pause and resume queues
 * (admin).
 *
 * Server-rendered HTML without script. Every value is escaped, and a strict CSP
 * forbids scripts and framing. The page reloads itself every 5 s (`?refresh=0`
 * stops that). Browsers sign in with HTTP Basic: any user name, with an API key
 * as the password (see the auth plugin). A button's POST must come from this
 * origin (Sec-Fetch-Site / Origin), since a browser would add the saved
 * credentials to a cross-site form too.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../db/types.js';
import { AppError } from '../../errors.js';
import type { Jobs } from '../../jobs/jobs.js';
import { listAttempts } from '../../jobs/task-runs.js';
import { JOB_STATES, QUEUE_NAMES } from '../../jobs/types.js';
import { StringEnum } from '../schemas.js';
import { assertMayActOn, mayActOn } from '../task-roles.js';
import { getTaskOr404, TaskIdParams } from './tasks.routes.js';

export interface AdminRoutesOptions {
  jobs: Jobs;
  db: Db;
}

/** A piece of HTML whose text is already escaped. */
class Html {
  constructor(readonly text: string) {}
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

const part = (v: unknown): string =>
  v instanceof Html
    ? v.text
    : Array.isArray(v)
      ? v.map(part).join('')
      : v === null || v === undefined || v === false
        ? ''
        : String(v).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);

/** Escapes every interpolated value unless it is Html already (arrays are joined). */
const html = (strings: TemplateStringsArray, ...values: unknown[]): Html =>
  new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? part(values[i]) : ''), ''));

/** A table's heading row. */
const headRow = (...cols: string[]) =>
  html`<tr>
    ${cols.map((c) => html`<th>${c}</th>`)}
  </tr>`;

/** A table of labelled values, a row each. */
const fieldTable = (rows: ReadonlyArray<readonly [string, unknown]>) =>
  html`<table>
    ${rows.map(
      ([label, value]) =>
        html`<tr>
          <th>${label}</th>
          <td>${value}</td>
        </tr>`,
    )}
  </table>`;

const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}a{color:#0645ad}
.s-failed,.s-dead{color:#b00020}.s-active{color:#0a6}.s-completed{color:#555}.muted{color:#777}
form{display:inline;margin:0}button{font:inherit;padding:.1rem .5rem}pre{background:#f7f7f7;padding:.5rem;max-width:60rem;overflow:auto}
nav a{margin-right:.6rem}.sel{font-weight:bold}`;

const ago = (ms: number, now: number) => {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120
    ? `${s} s ago`
    : s < 7200
      ? `${Math.round(s / 60)} min ago`
      : `${Math.round(s / 3600)} h ago`;
};
const iso = (ms: number | null) =>
  ms === null ? '' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const age = (ms: number) =>
  ms === 0 ? '' : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;

function page(title: string, body: Html, refresh: boolean): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title} · OmniVibe Pro</title>
        ${refresh ? new Html('<meta http-equiv="refresh" content="5">') : ''}
        <style>
          ${new Html(STYLE)}
        </style>
      </head>
      <body>
        ${body}
      </body>
    </html>`.text;
}

function send(reply: FastifyReply, text: string): FastifyReply {
  return reply
    .header('content-security-policy', CSP)
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .type('text/html; charset=utf-8')
    .send(text);
}

/** A button posting to `action` (same origin only, see sameOrigin). */
const button = (action: string, label: string) =>
  html`<form method="post" action="${action}"><button type="submit">${label}</button></form>`;

/** Rejects a cross-site POST: the browser would attach the saved Basic credentials to it. */
function sameOrigin(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  const ok =
    site !== undefined
      ? site === 'same-origin'
      : origin === undefined || origin === `${req.protocol}://${req.headers.host ?? ''}`;
  if (!ok) throw new AppError('FORBIDDEN', 'dashboard actions must come from the dashboard itself');
}

export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, opts) => {
  const queue = opts.jobs.admin;
  const schema = { hide: true };
  // Buttons post empty HTML forms: accept the form type and ignore its (empty) body.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 1024 },
    (_req, _body, done) => done(null, {}),
  );
  app.addHook('preHandler', async (req) => {
    if (req.method === 'POST') sameOrigin(req);
  });

  app.get(
    '/',
    {
      schema: {
        ...schema,
        querystring: Type.Object(
          {
            state: Type.Optional(StringEnum(JOB_STATES)),
            queue: Type.Optional(StringEnum(QUEUE_NAMES)),
            refresh: Type.Optional(Type.Union([Type.Literal('0'), Type.Literal('1')])),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const { state, queue: onlyQueue } = req.query;
      const refresh = req.query.refresh !== '0';
      const [counts, workers, tasks] = await Promise.all([
        queue.counts(),
        queue.listWorkers(),
        queue.list({ ...(state ? { state } : {}), ...(onlyQueue ? { queue: onlyQueue } : {}), limit: 50 }),
      ]);
      const role = req.principal?.role;
      const now = Date.now();
      const link = (q: { state?: string | undefined; queue?: string | undefined }, reload = refresh) => {
        const params = new URLSearchParams();
        if (q.state) params.set('state', q.state);
        if (q.queue) params.set('queue', q.queue);
        if (!reload) params.set('refresh', '0');
        const s = params.toString();
        return s ? `/admin?${s}` : '/admin';
      };
      const body = html` <h1>Jobs <span class="muted">· ${queue.backend} backend · ${iso(now)} UTC</span></h1>
        <p class="muted">
          Signed in as ${role}. ${refresh ? 'Reloads every 5 s' : 'Not reloading'}:
          <a href="${link({ state, queue: onlyQueue }, !refresh)}">${refresh ? 'stop' : 'start'}</a>. Charts
          of every process's live figures: <a href="/admin/overview">overview</a>.
          ${queue.backend === 'bullmq' ? html`BullMQ's own board: <a href="/admin/queues">/admin/queues</a>.` : ''}
        </p>
        <h2>Queues</h2>
        <table>
          ${headRow('queue', ...JOB_STATES, 'done / min', 'failed / min', 'oldest waiting', '')}
          ${counts.map(
            (c) =>
              html`<tr>
                <td>
                  <a href="${link({ queue: c.queue })}">${c.queue}</a>${c.paused ? html` <b>paused</b>` : ''}
                </td>
                ${JOB_STATES.map((s) => html`<td class="n"><a href="${link({ queue: c.queue, state: s })}">${c.counts[s]}</a></td>`)}
                <td class="n">${c.completedLastMinute}</td>
                <td class="n">${c.failedLastMinute}</td>
                <td class="n">${age(c.oldestWaitingMs)}</td>
                <td>
                  ${role === 'admin' ? button(`/admin/queues/${c.queue}/${c.paused ? 'resume' : 'pause'}`, c.paused ? 'resume' : 'pause') : ''}
                </td>
              </tr>`,
          )}
        </table>
        <h2>Workers</h2>
        ${
          workers.length === 0
            ? html`<p class="muted">No worker has published a heartbeat in the last hour.</p>`
            : html`<table>
                ${headRow('worker', 'host', 'pid', 'queues', 'concurrency', 'active', 'processed', 'failed', 'started', 'last seen')}
                ${workers.map(
                  (w) =>
                    html`<tr>
                      <td>${w.id}</td>
                      <td>${w.host}</td>
                      <td class="n">${w.pid}</td>
                      <td>${w.queues.join(', ')}</td>
                      <td class="n">${w.concurrency}</td>
                      <td class="n">${w.active}</td>
                      <td class="n">${w.processed}</td>
                      <td class="n">${w.failed}</td>
                      <td>${iso(w.startedAt)}</td>
                      <td class="${now - w.lastSeenAt > 60_000 ? 's-dead' : ''}">
                        ${ago(w.lastSeenAt, now)}
                      </td>
                    </tr>`,
                )}
              </table>`
        }
        <h2>Tasks</h2>
        <nav>
          state:
          <a class="${state ? '' : 'sel'}" href="${link({ queue: onlyQueue })}">all</a>
          ${JOB_STATES.map((s) => html`<a class="${s === state ? 'sel' : ''}" href="${link({ state: s, queue: onlyQueue })}">${s}</a>`)}
        </nav>
        <nav>
          queue:
          <a class="${onlyQueue ? '' : 'sel'}" href="${link({ state })}">all</a>
          ${QUEUE_NAMES.map((q) => html`<a class="${q === onlyQueue ? 'sel' : ''}" href="${link({ state, queue: q })}">${q}</a>`)}
        </nav>
        ${
          tasks.items.length === 0
            ? html`<p class="muted">No task here.</p>`
            : html`<table>
                  ${headRow('task', 'name', 'queue', 'state', 'attempts', 'progress', 'enqueued', 'finished', 'error')}
                  ${tasks.items.map(
                    (j) =>
                      html`<tr>
                        <td><a href="/admin/tasks/${encodeURIComponent(j.id)}">${j.id}</a></td>
                        <td>${j.name}</td>
                        <td>${j.queue}</td>
                        <td class="s-${j.state}">${j.state}</td>
                        <td class="n">${j.attemptsMade} / ${j.maxAttempts}</td>
                        <td class="n">${Math.round(j.progress)} %</td>
                        <td>${iso(j.enqueuedAt)}</td>
                        <td>${iso(j.finishedAt)}</td>
                        <td>${(j.error ?? '').slice(0, 120)}</td>
                      </tr>`,
                  )}
                </table>
                <p class="muted">The latest ${tasks.items.length}.</p>`
        }`;
      return send(reply, page('Jobs', body, refresh));
    },
  );

  const getTask = (id: string) => getTaskOr404(queue, id);

  app.get('/tasks/:id', { schema: { ...schema, params: TaskIdParams } }, async (req, reply) => {
    const job = await getTask(req.params.id);
    const runs = await listAttempts(opts.db, queue, job.id);
    const acts = mayActOn(opts.jobs, req.principal, job.name);
    const id = encodeURIComponent(job.id);
    const json = (v: unknown) => JSON.stringify(v, null, 2) ?? 'null';
    const body = html` <p><a href="/admin">← jobs</a></p>
      <h1>Task ${job.id} <span class="s-${job.state}">${job.state}</span></h1>
      <p>
        ${acts && ['failed', 'dead', 'cancelled'].includes(job.state) ? button(`/admin/tasks/${id}/retry`, 'retry') : ''}
        ${acts && ['waiting', 'delayed', 'prefetched', 'active'].includes(job.state) ? button(`/admin/tasks/${id}/cancel`, 'cancel') : ''}
      </p>
      ${fieldTable([
        ['name', job.name],
        ['queue', job.queue],
        ['priority', job.priority],
        ['progress', html`${Math.round(job.progress)} %`],
        ['attempts', html`${job.attemptsMade} of ${job.maxAttempts}; stalled ${job.stalls} times`],
        ['idempotency key', job.idempotencyKey ?? ''],
        ['enqueued', iso(job.enqueuedAt)],
        ['runs at', iso(job.runAt)],
        ['started', iso(job.startedAt)],
        ['finished', iso(job.finishedAt)],
        ['worker', job.worker ?? ''],
      ])}
      <h2>Payload</h2>
      <pre>${json(job.payload)}</pre>
      ${
        job.result !== null && job.result !== undefined
          ? html`<h2>Result</h2>
              <pre>${json(job.result)}</pre>`
          : ''
      }
      ${
        job.error
          ? html`<h2>Error</h2>
              <pre>${job.error}</pre>`
          : ''
      }
      <h2>Attempts</h2>
      ${
        runs.length === 0
          ? html`<p class="muted">No attempt has finished yet.</p>`
          : html`<table>
              ${headRow('attempt', 'status', 'started', 'finished', 'wait ms', 'run ms', 'worker', 'error')}
              ${runs.map(
                (r) =>
                  html`<tr>
                    <td class="n">${r.attempt}</td>
                    <td class="s-${r.status}">${r.status}</td>
                    <td>${r.started_at ?? ''}</td>
                    <td>${r.finished_at ?? ''}</td>
                    <td class="n">${r.wait_ms ?? ''}</td>
                    <td class="n">${r.run_ms ?? ''}</td>
                    <td>${r.worker ?? ''}</td>
                    <td>${r.error ?? ''}</td>
                  </tr>`,
              )}
            </table>`
      }`;
    return send(reply, page(`Task ${job.id}`, body, false));
  });

  for (const action of ['retry', 'cancel'] as const)
    app.post(`/tasks/:id/${action}`, { schema: { ...schema, params: TaskIdParams } }, async (req, reply) => {
      const job = await getTask(req.params.id);
      assertMayActOn(opts.jobs, req.principal, job.name);
      // A retried task can come back under a new id (BullMQ, see its retry()): show that one.
      const after = await queue[action](job.id);
      return reply.redirect(`/admin/tasks/${encodeURIComponent(after.id)}`, 303);
    });

  for (const action of ['pause', 'resume'] as const)
    app.post(
      `/queues/:name/${action}`,
      {
        config: { auth: 'admin' },
        schema: {
          ...schema,
          params: Type.Object({ name: StringEnum(QUEUE_NAMES) }, { additionalProperties: false }),
        },
      },
      async (req, reply) => {
        await queue[action](req.params.name);
        return reply.redirect('/admin', 303);
      },
    );
};
