import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError, httpUrl, intVar, parseEnv } from './env.js';
import { type AlertRule, DEFAULT_RULES, RULE_NAMES, type RuleName } from './alert-rules.js';

/** Alert evaluation and delivery (docs/observability.md, "Alerts"). */
export interface AlertsConfig {
  /** How often the alert evaluator looks, ms (ALERT_EVAL_INTERVAL_S, 15; 0: no evaluation in this install). */
  readonly evalIntervalMs: number;
  /** A firing alert is announced again this often, ms (ALERT_REPEAT_INTERVAL_S, 3600). */
  readonly repeatIntervalMs: number;
  /** Slack incoming webhook (ALERT_SLACK_WEBHOOK_URL). */
  readonly slackWebhookUrl: string | undefined;
  /** Any URL that takes a JSON POST of each notification (ALERT_WEBHOOK_URL). */
  readonly webhookUrl: string | undefined;
  /** Email: SMTP server as a URL, smtp://user:pass@host:587 or smtps://... (ALERT_SMTP_URL). */
  readonly smtpUrl: string | undefined;
  readonly emailFrom: string;
  /** Recipients, comma-separated (ALERT_EMAIL_TO); email is sent when this and ALERT_SMTP_URL are set. */
  readonly emailTo: string[];
  /** The link in every notification (ALERT_DASHBOARD_URL; default the API's /admin). */
  readonly dashboardUrl: string | undefined;
  /** One delivery attempt's timeout, ms (ALERT_DELIVERY_TIMEOUT_MS, 10000). */
  readonly deliveryTimeoutMs: number;
  /** The rules: defaults, with ALERT_RULES_FILE's changes and ALERT_DAILY_BUDGET_USD. */
  readonly rules: readonly AlertRule[];
}

const alertsEnvSchema = () =>
  z.object({
    ALERT_EVAL_INTERVAL_S: intVar(0, 3600, 15),
    ALERT_REPEAT_INTERVAL_S: intVar(1, 7 * 86_400, 3600),
    ALERT_SLACK_WEBHOOK_URL: httpUrl('a Slack incoming webhook, https://hooks.slack.com/services/...'),
    ALERT_WEBHOOK_URL: httpUrl('a URL that accepts a JSON POST'),
    ALERT_SMTP_URL: z
      .string()
      .trim()
      .regex(/^smtps?:\/\/[^/\s]+(:\d+)?\/?$/, 'smtp://user:password@host:port or smtps://...')
      .optional(),
    ALERT_EMAIL_FROM: z
      .string()
      .trim()
      .min(3, 'an email address')
      .optional()
      .default('omnivibe-alerts@localhost'),
    ALERT_EMAIL_TO: z
      .string()
      .trim()
      .regex(/^[^,\s@]+@[^,\s@]+(,[^,\s@]+@[^,\s@]+)*$/, 'comma-separated email addresses')
      .optional(),
    ALERT_DASHBOARD_URL: httpUrl('the dashboard link put in notifications'),
    ALERT_DELIVERY_TIMEOUT_MS: intVar(100, 120_000, 10_000),
    ALERT_DAILY_BUDGET_USD: z
      .string()
      .trim()
      .regex(/^\d+(\.\d+)?$/, 'a number of US dollars, e.g. 50')
      .transform(Number)
      .optional(),
    ALERT_RULES_FILE: z.string().trim().min(1, 'a path to a JSON file').optional(),
  });

const RuleChange = z
  .object({
    enabled: z.boolean(),
    threshold: z.number().finite(),
    thresholds: z.record(z.string(), z.number().finite()),
    for_s: z.number().int().min(0).max(86_400),
    severity: z.enum(['critical', 'warning', 'info']),
    window: z.enum(['1m', '5m', '15m', '1h']),
    min_events: z.number().int().min(0),
  })
  .partial()
  .strict();

const RulesFile = z
  .object({ rules: z.partialRecord(z.enum(RULE_NAMES as [RuleName, ...RuleName[]]), RuleChange) })
  .strict();

/** The rules with ALERT_RULES_FILE's changes (`{"rules": {"http_error_rate": {"threshold": 0.02, "for_s": 120}}}`). */
export function loadRules(file: string | undefined, dailyBudgetUsd: number | undefined): AlertRule[] {
  let changes: z.infer<typeof RulesFile>['rules'] = {};
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError([
        `ALERT_RULES_FILE=${JSON.stringify(file)} is invalid: ${(err as Error).message}`,
      ]);
    }
    const r = RulesFile.safeParse(parsed);
    if (!r.success)
      throw new ConfigError(
        r.error.issues.map(
          (i) =>
            `ALERT_RULES_FILE=${JSON.stringify(file)} is invalid at ${i.path.join('.') || '(top)'}: ${i.message}`,
        ),
      );
    changes = r.data.rules;
  }
  return DEFAULT_RULES.map((base) => {
    const c = changes[base.name] ?? {};
    return {
      ...base,
      ...(base.name === 'daily_ai_spend' && dailyBudgetUsd !== undefined
        ? { threshold: dailyBudgetUsd }
        : {}),
      ...(c.enabled !== undefined ? { enabled: c.enabled } : {}),
      ...(c.threshold !== undefined ? { threshold: c.threshold } : {}),
      ...(c.thresholds !== undefined ? { thresholds: { ...base.thresholds, ...c.thresholds } } : {}),
      ...(c.for_s !== undefined ? { forS: c.for_s } : {}),
      ...(c.severity !== undefined ? { severity: c.severity } : {}),
      ...(c.window !== undefined ? { window: c.window } : {}),
      ...(c.min_events !== undefined ? { minEvents: c.min_events } : {}),
    };
  });
}

export function loadAlertsConfig(env: NodeJS.ProcessEnv): AlertsConfig {
  const e = parseEnv(alertsEnvSchema(), env);
  return Object.freeze({
    evalIntervalMs: e.ALERT_EVAL_INTERVAL_S * 1000,
    repeatIntervalMs: e.ALERT_REPEAT_INTERVAL_S * 1000,
    slackWebhookUrl: e.ALERT_SLACK_WEBHOOK_URL,
    webhookUrl: e.ALERT_WEBHOOK_URL,
    smtpUrl: e.ALERT_SMTP_URL,
    emailFrom: e.ALERT_EMAIL_FROM,
    emailTo: e.ALERT_EMAIL_TO?.split(',') ?? [],
    dashboardUrl: e.ALERT_DASHBOARD_URL,
    deliveryTimeoutMs: e.ALERT_DELIVERY_TIMEOUT_MS,
    rules: Object.freeze(loadRules(e.ALERT_RULES_FILE, e.ALERT_DAILY_BUDGET_USD)),
  });
}
