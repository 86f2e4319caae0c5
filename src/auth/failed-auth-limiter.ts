/**
 * Failed authentications per client address, in fixed one-minute windows. Past the limit the
 * address gets 429 for the rest of its window without any key being hashed or looked up, so a
 * flood of bad keys costs the server almost nothing. A key that is already known (cached as
 * valid) is never refused by this: the limiter is asked only about keys that need a lookup.
 * Memory is bounded: past `maxAddresses` the address whose window started first is forgotten.
 */
const WINDOW_MS = 60_000;

export class FailedAuthLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly maxAddresses = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `address` may try a key again; 0 when it may now. */
  retryAfterS(address: string): number {
    const w = this.windows.get(address);
    if (!w || w.failures < this.perMinute) return 0;
    const left = w.start + WINDOW_MS - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Counts one failed authentication from `address`. */
  fail(address: string): void {
    const now = this.now();
    const w = this.windows.get(address);
    if (w && now - w.start < WINDOW_MS) {
      w.failures += 1;
      return;
    }
    // A new window goes to the end of the map's order, so the first entry is the oldest.
    this.windows.delete(address);
    this.windows.set(address, { start: now, failures: 1 });
    if (this.windows.size > this.maxAddresses) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
  }
}
