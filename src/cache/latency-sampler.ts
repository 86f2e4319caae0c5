/** The most recent `size` samples, for percentiles over a sliding window at constant memory. */
export class LatencySampler {
  private readonly buf: Float64Array;
  private n = 0;

  constructor(size = 2048) {
    this.buf = new Float64Array(size);
  }

  add(v: number): void {
    this.buf[this.n % this.buf.length] = v;
    this.n++;
  }

  /** Nearest-rank percentile (0..100) of the window; null when empty. */
  percentile(p: number): number | null {
    const count = Math.min(this.n, this.buf.length);
    if (count === 0) return null;
    const sorted = this.buf.slice(0, count).sort();
    const idx = Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1));
    return sorted[idx] as number;
  }
}
