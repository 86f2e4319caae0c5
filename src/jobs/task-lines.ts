/**
 * The two lines the worker runtime logs per attempt, `task started` and `task
 * finished`. Fast path (shortcut `log_lines`): built as text in pino's own line
 * format and written straight to the logger's destination (level, time, the
 * logger's bindings, the fields, then msg), about a third of the cost of pino's
 * generic serialisation (docs/jobs.md, "Shortcuts"). The fallback writes the
 * same fields through pino's API, so no line is ever dropped. Level checks stay
 * the logger's.
 */
import type { Level, Logger } from 'pino';
import { type RawLineTarget, rawLineTarget } from './pino-internals.js';
import type { Shortcuts } from './shortcuts.js';

export interface TaskLineFields {
  jobId: string;
  task: string;
  queue: string;
  attempt: number;
}

export interface TaskOutcomeFields {
  /** Set when the attempt failed and the job runs again after this delay. */
  retryInMs?: number;
  status: string;
  waitMs: number;
  runMs: number;
  error?: string;
}

const q = JSON.stringify;

export class TaskLines {
  /** The raw target (fast path), or undefined: lines go through pino's API. */
  private readonly raw: RawLineTarget | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly shortcuts: Shortcuts,
    /** The logger's mixin, when it has one (tracing: the active span's ids): the built lines carry its fields too. */
    mixin?: () => Record<string, string | undefined>,
  ) {
    this.raw = shortcuts.probe('log_lines', () => rawLineTarget(logger, mixin));
  }

  started(f: TaskLineFields, waitMs: number): void {
    if (!this.logger.isLevelEnabled('info')) return;
    this.shortcuts.count('log_lines', this.raw !== undefined);
    if (this.raw)
      this.raw.stream.write(`${this.head(this.raw, 'info', f)},"waitMs":${waitMs},"msg":"task started"}\n`);
    else this.logger.info({ ...f, waitMs }, 'task started');
  }

  finished(f: TaskLineFields, o: TaskOutcomeFields): void {
    const level: Level = o.status === 'succeeded' ? 'info' : 'warn';
    if (!this.logger.isLevelEnabled(level)) return;
    this.shortcuts.count('log_lines', this.raw !== undefined);
    if (!this.raw) {
      this.logger[level]({ ...f, ...o }, 'task finished');
      return;
    }
    this.raw.stream.write(
      `${this.head(this.raw, level, f)}${o.retryInMs === undefined ? '' : `,"retryInMs":${o.retryInMs}`},"status":${q(o.status)},"waitMs":${o.waitMs},"runMs":${o.runMs}${o.error === undefined ? '' : `,"error":${q(o.error)}`},"msg":"task finished"}\n`,
    );
  }

  private head(raw: RawLineTarget, level: Level, f: TaskLineFields): string {
    return `{"level":${this.logger.levels.values[level]},"time":${Date.now()}${raw.bindings}${raw.mixin ? mixed(raw.mixin()) : ''},"jobId":${q(f.jobId)},"task":${q(f.task)},"queue":${q(f.queue)},"attempt":${f.attempt}`;
  }
}

/** A mixin's fields as pino writes them (`,"k":"v"`; undefined ones left out). */
function mixed(fields: Record<string, string | undefined>): string {
  let out = '';
  for (const k in fields) {
    const v = fields[k];
    if (v !== undefined) out += `,${q(k)}:${q(v)}`;
  }
  return out;
}
