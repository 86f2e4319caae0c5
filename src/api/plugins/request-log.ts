/**
 * Request logging that a flood cannot blow up. One `info` line per answered request ("request
 * completed", with the method, URL and status; the "incoming request" line is `debug`), except for
 * refusals (401 and 429), which are counted and written as one aggregated line per interval:
 * how many of each status, from how many addresses, and the busiest few. A flood of bad keys at
 * thousands of requests a second thus writes one line every 10 s instead of two per request.
 */
import { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from 'fastify';

const AGGREGATED = new Set([401, 429]);
/** Addresses named in one aggregated line. */
const TOP_ADDRESSES = 5;
/** Addresses counted per interval; more are summed under `others` (bounded memory). */
const MAX_ADDRESSES = 10_000;

export class RequestLogController extends LogController {
  private byStatus = new Map<number, number>();
  private byAddress = new Map<string, number>();
  private others = 0;
  private timer: NodeJS.Timeout | undefined;
  private log: FastifyBaseLogger | undefined;

  constructor(private readonly intervalMs = 10_000) {
    super();
  }

  /** Starts writing aggregated lines to `log`. */
  start(log: FastifyBaseLogger): void {
    this.log = log;
    this.timer = setInterval(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Writes what is counted and stops. */
  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }

  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) {
      reply.log.error(
        { req: request, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      );
      return;
    }
    if (AGGREGATED.has(reply.statusCode)) {
      this.count(reply.statusCode, request.ip);
      return;
    }
    reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }

  private count(status: number, address: string): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    const seen = this.byAddress.get(address);
    if (seen !== undefined) this.byAddress.set(address, seen + 1);
    else if (this.byAddress.size < MAX_ADDRESSES) this.byAddress.set(address, 1);
    else this.others += 1;
  }

  private flush(): void {
    if (this.byStatus.size === 0 || !this.log) return;
    const top = [...this.byAddress.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_ADDRESSES)
      .map(([address, requests]) => ({ address, requests }));
    this.log.info(
      {
        refused: Object.fromEntries(this.byStatus),
        addresses: this.byAddress.size + (this.others > 0 ? 1 : 0),
        top,
        interval_ms: this.intervalMs,
      },
      'refused requests (aggregated)',
    );
    this.byStatus = new Map();
    this.byAddress = new Map();
    this.others = 0;
  }
}
