/**
 * Alerts the service evaluated itself: GET /alerts (firing and past, with each notification's
 * result) and POST /alerts/test, a test notification to every configured channel (admin).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AlertRow, AlertsRepo, DeliveryRecord } from '../../db/alerts.repo.js';
import type { AlertNotifier } from '../../telemetry/alerts/alert-notifier.js';
import { Nullable, errorResponses } from '../schemas.js';

const Alert = Type.Object({
  id: Type.Integer(),
  rule: Type.String(),
  severity: Type.String(),
  state: Type.String(),
  subject: Type.String(),
  value: Nullable(Type.Number()),
  threshold: Type.Number(),
  started_at: Type.String(),
  resolved_at: Nullable(Type.String()),
  last_notified_at: Nullable(Type.String()),
  notifications: Type.Array(
    Type.Object({
      kind: Type.String(),
      channel: Type.String(),
      ok: Type.Boolean(),
      at: Type.String(),
      attempts: Type.Integer(),
      error: Type.Optional(Type.String()),
    }),
  ),
});

const view = (a: AlertRow) => ({
  id: a.id,
  rule: a.rule,
  severity: a.severity,
  state: a.state,
  subject: a.subject,
  value: a.value,
  threshold: a.threshold,
  started_at: a.started_at,
  resolved_at: a.resolved_at,
  last_notified_at: a.last_notified_at,
  notifications: JSON.parse(a.notifications) as DeliveryRecord[],
});

export const alertsRoutes: FastifyPluginAsyncTypebox<{ repo: AlertsRepo; notifier: AlertNotifier }> = async (
  app,
  { repo, notifier },
) => {
  const tags = ['observability'];
  app.get(
    '/alerts',
    {
      schema: {
        tags,
        description:
          'Alerts firing now, and the latest 50 (firing or resolved) with what each channel answered.',
        response: { 200: Type.Object({ firing: Type.Array(Alert), recent: Type.Array(Alert) }) },
      },
    },
    async () => {
      const [firing, recent] = await Promise.all([repo.firing(), repo.recent(50)]);
      return { firing: firing.map(view), recent: recent.map(view) };
    },
  );
  app.post(
    '/alerts/test',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Sends a test notification to each configured channel (Slack, email, webhook) and reports each result.',
        response: {
          200: Type.Object({
            channels: Type.Array(
              Type.Object({
                channel: Type.String(),
                ok: Type.Boolean(),
                attempts: Type.Integer(),
                error: Type.Optional(Type.String()),
              }),
            ),
          }),
          ...errorResponses(403),
        },
      },
    },
    async () => ({ channels: await notifier.test() }),
  );
};
