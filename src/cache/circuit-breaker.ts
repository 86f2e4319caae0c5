export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** Time the circuit stays open before a probe is allowed, ms. */
  cooldownMs: number;
  now?: () => number;
}

/**
 * Closed: calls go through and consecutive failures are counted. Open: calls are refused
 * until the cooldown ends; then exactly one caller gets `probe` (half-open) and reports
 * the result, which closes the circuit or opens it for another cooldown.
 */
export class CircuitBreaker {
  state: CircuitState = 'closed';
  private failures = 0;
  private openUntil = 0;
  private readonly now: () => number;
  opened = 0;

  constructor(private readonly opts: CircuitBreakerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** 'call' when closed; 'probe' once per cooldown when open; otherwise 'refuse'. */
  admit(): 'call' | 'probe' | 'refuse' {
    if (this.state === 'closed') return 'call';
    if (this.state === 'open' && this.now() >= this.openUntil) {
      this.state = 'half_open';
      return 'probe';
    }
    return 'refuse';
  }

  success(): void {
    this.failures = 0;
  }

  failure(): void {
    this.failures++;
    if (this.state === 'closed' && this.failures >= this.opts.failureThreshold) this.open();
  }

  /** The probe's verdict. */
  probeResult(ok: boolean): void {
    if (ok) {
      this.state = 'closed';
      this.failures = 0;
    } else this.open();
  }

  private open(): void {
    this.state = 'open';
    this.opened++;
    this.openUntil = this.now() + this.opts.cooldownMs;
  }
}
