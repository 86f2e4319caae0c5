/**
 * The process logger: JSON lines on stdout (or `dest`), level LOG_LEVEL.
 *
 * Lines logged during one turn of the event loop are written together, in one
 * synchronous write at the end of that turn, or sooner once 64 KB are waiting.
 * A worker logs two lines per job, and a write system call costs about the same
 * whatever it carries: one write per turn cost less CPU per job than pino's
 * asynchronous destination (the libuv thread pool) or a write per line
 * (docs/operations.md, "Logs", has the measurements).
 *
 * A process that exits (normally or by an uncaught error) writes what is waiting
 * first. One killed with SIGKILL loses at most the lines of its last turn.
 *
 * With tracing on, every line logged inside a span carries its `trace_id` and `span_id`.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config/config.js';
import { traceLogFields } from '../telemetry/tracing.js';

const FLUSH_AT_CHARS = 65_536;

class TurnBufferedDestination implements DestinationStream {
  private chunks: string[] = [];
  private size = 0;
  private scheduled = false;
  private readonly out: DestinationStream;

  constructor(dest: number | string) {
    // SonicBoom in sync mode: retries a full non-blocking pipe (EAGAIN) instead of dropping lines.
    this.out = pino.destination({ dest, sync: true });
    process.on('exit', () => this.flush());
  }

  write(line: string): void {
    this.chunks.push(line);
    this.size += line.length;
    if (this.size >= FLUSH_AT_CHARS) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.chunks.length === 0) return;
    const text = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    this.out.write(text);
  }
}

export function createLogger(
  config: Pick<Config, 'logLevel'> & { telemetry?: Pick<Config['telemetry'], 'tracing'> },
  dest: number | string = 1,
): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { pid: process.pid },
      ...(config.telemetry?.tracing.enabled ? { mixin: traceLogFields } : {}),
    },
    new TurnBufferedDestination(dest),
  );
}
