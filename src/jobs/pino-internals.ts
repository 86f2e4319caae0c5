/**
 * Everything the job system knows of pino's internals, in one place: the private symbols through which
 * the worker's per-attempt lines are written as ready-made text (task-lines.ts). Probed once per logger;
 * when anything differs (or JOBS_SHORTCUT_LOG_LINES=off) the lines go through pino's public API.
 */
import pino, { type Logger } from 'pino';

/** Where and with what a line is written: the logger's destination and its serialised bindings (`,"k":v...`). */
export interface RawLineTarget {
  stream: { write(line: string): unknown };
  bindings: string;
  /** The logger's mixin (the one the caller knows), whose fields follow the bindings on each line. */
  mixin?: () => Record<string, string | undefined>;
}

/**
 * The raw target of `logger`, or what differs from the layout the built lines assume: pino's destination
 * and bindings behind its symbols, epoch-ms `time`, `msg` as the message key, and nothing that rewrites a
 * line (log-method hook, nested key, message prefix, a mixin other than `knownMixin`). `knownMixin`
 * (tracing's span ids) takes no argument and returns string fields, which pino merges in its default way
 * (its fields after the bindings, before the line's own): the built line writes them there itself.
 */
export function rawLineTarget(
  logger: Logger,
  knownMixin?: () => Record<string, string | undefined>,
): RawLineTarget | string {
  const s = pino.symbols;
  const raw = logger as unknown as Record<symbol, unknown>;
  const stream = raw[s.streamSym] as { write?: unknown } | undefined;
  const bindings = raw[s.chindingsSym];
  if (typeof stream?.write !== 'function') return "pino's stream symbol does not hold a writable stream";
  if (typeof bindings !== 'string') return "pino's bindings symbol does not hold a string";
  if (raw[s.timeSym] !== pino.stdTimeFunctions.epochTime) return 'the logger does not write epoch-ms times';
  if (raw[s.messageKeySym] !== 'msg') return 'the message key is not msg';
  const mixin = raw[s.mixinSym];
  if (mixin && mixin !== knownMixin) return 'the logger has a mixin';
  const mergeSym = (s as unknown as Record<string, symbol | undefined>).mixinMergeStrategySym;
  if (mixin && (!mergeSym || raw[mergeSym])) return 'the logger merges its mixin its own way';
  if ((raw[s.hooksSym] as { logMethod?: unknown } | undefined)?.logMethod)
    return 'the logger has a logMethod hook';
  if (raw[s.nestedKeySym]) return 'the logger nests its fields';
  const msgPrefixSym = (s as unknown as Record<string, symbol | undefined>).msgPrefixSym;
  if (msgPrefixSym && raw[msgPrefixSym]) return 'the logger prefixes its messages';
  const formatters = raw[s.formattersSym] as
    { level?: (label: string, n: number) => unknown; log?: (o: object) => unknown } | undefined;
  const level = formatters?.level?.('info', 30) as Record<string, unknown> | undefined;
  if (!level || Object.keys(level).join() !== 'level' || level.level !== 30)
    return 'the logger formats levels its own way';
  const probe = { a: 1 };
  if (formatters?.log && formatters.log(probe) !== probe) return 'the logger formats its fields';
  return { stream: stream as RawLineTarget['stream'], bindings, ...(mixin ? { mixin: knownMixin } : {}) };
}
