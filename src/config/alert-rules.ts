/**
 * The alert rules the service evaluates itself (installs without Prometheus; deploy/prometheus
 * holds the same rules for installs with it). Each has a threshold, a `for` duration and a
 * severity, all configurable through ALERT_RULES_FILE; docs/observability.md has a runbook for each.
 */

export type RuleName =
  | 'http_error_rate'
  | 'http_route_p99'
  | 'task_failure_rate'
  | 'queue_oldest_wait'
  | 'queue_no_worker'
  | 'daily_ai_spend'
  | 'database_unreachable'
  | 'cache_hit_rate_collapse';

export type Severity = 'critical' | 'warning' | 'info';

export interface AlertRule {
  name: RuleName;
  /** Off rules are not evaluated. */
  enabled: boolean;
  /** Fires when the value is above (or, for `below` rules, under) this. */
  threshold: number;
  /** Thresholds for particular subjects (a queue, a route), overriding `threshold`. */
  thresholds: Readonly<Record<string, number>>;
  /** The condition must hold this long before the alert fires, seconds. */
  forS: number;
  severity: Severity;
  /** The live-summary window the value is measured over. */
  window: '1m' | '5m' | '15m' | '1h';
  /** Too few events to judge below this (requests, finished tasks, cache reads). */
  minEvents: number;
  direction: 'above' | 'below';
  /** What the value is, for messages. */
  unit: string;
  description: string;
}

const rule = (
  r: Omit<AlertRule, 'enabled' | 'thresholds' | 'window' | 'minEvents'> & Partial<AlertRule>,
): AlertRule => ({
  enabled: true,
  thresholds: {},
  window: '5m',
  minEvents: 0,
  ...r,
});

/** The defaults: the seed's 5 % error rate for 5 minutes, and the rest of issue 13's list. */
export const DEFAULT_RULES: readonly AlertRule[] = [
  rule({
    name: 'http_error_rate',
    threshold: 0.05,
    forS: 300,
    severity: 'critical',
    minEvents: 20,
    direction: 'above',
    unit: 'share of requests answered 5xx',
    description: 'The API answers too many requests with a server error.',
  }),
  rule({
    name: 'http_route_p99',
    threshold: 2000,
    forS: 300,
    severity: 'warning',
    minEvents: 20,
    direction: 'above',
    unit: 'ms (P99 of one route)',
    description: 'One route is slow for most of its callers.',
  }),
  rule({
    name: 'task_failure_rate',
    threshold: 0.1,
    forS: 300,
    severity: 'warning',
    minEvents: 5,
    direction: 'above',
    unit: 'share of finished tasks that failed',
    description: 'Tasks of one kind keep failing.',
  }),
  rule({
    name: 'queue_oldest_wait',
    threshold: 600,
    thresholds: { high_priority: 60, default: 600, low_priority: 3600 },
    forS: 60,
    severity: 'warning',
    direction: 'above',
    unit: 's (oldest waiting task)',
    description: 'A queue is not keeping up: its oldest ready task has waited too long.',
  }),
  rule({
    name: 'queue_no_worker',
    threshold: 1,
    forS: 60,
    severity: 'critical',
    direction: 'below',
    unit: 'live workers serving the queue',
    description: 'Tasks are waiting in a queue that no live worker serves.',
  }),
  rule({
    name: 'daily_ai_spend',
    threshold: 50,
    forS: 0,
    severity: 'warning',
    direction: 'above',
    unit: 'USD spent on AI vendors today (UTC)',
    description: 'Vendor spend today is over the daily budget.',
  }),
  rule({
    name: 'database_unreachable',
    threshold: 0,
    forS: 30,
    severity: 'critical',
    direction: 'above',
    unit: '1 when the database does not answer',
    description: 'The database does not answer.',
  }),
  rule({
    name: 'cache_hit_rate_collapse',
    threshold: 0.2,
    forS: 600,
    severity: 'warning',
    minEvents: 100,
    direction: 'below',
    unit: 'cache hit rate',
    description: 'The cache hit rate collapsed: most reads go to the database.',
  }),
];

export const RULE_NAMES = DEFAULT_RULES.map((r) => r.name);

/** Whether `value` breaches the rule for `subject`. */
export function breaches(r: AlertRule, subject: string, value: number): boolean {
  const threshold = r.thresholds[subject] ?? r.threshold;
  return r.direction === 'above' ? value > threshold : value < threshold;
}

export const thresholdFor = (r: AlertRule, subject: string): number => r.thresholds[subject] ?? r.threshold;
