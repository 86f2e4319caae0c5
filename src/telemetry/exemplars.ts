/**
 * OpenMetrics exemplars: with tracing on, the latest observation of each histogram bucket keeps the
 * trace id of the (sampled) span it was made in, and /metrics in OpenMetrics shows it after the
 * bucket's sample (`... 12 # {trace_id="4bf9..."} 0.0042 1733462400.123`), so a dashboard jumps from
 * a slow bucket to a trace that fell in it. The Prometheus text format has no exemplars.
 *
 * Bounded like the series: one exemplar per bucket of each labelled histogram (the cardinality rule).
 */

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** A bucket's identity: metric name, its labels sorted (values as exposed), and `le` as a number. */
function bucketKey(name: string, labels: [string, string][], le: string): string {
  const sorted = labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${name}{${sorted.map(([k, v]) => `${k}="${v}"`).join(',')}}${le}`;
}

const canonicalLe = (le: string) => (le === '+Inf' ? '+Inf' : String(Number(le)));

export class Exemplars {
  private readonly latest = new Map<string, string>();

  /** Keeps `traceId` as the exemplar of the bucket `value` falls in (`buckets`: the histogram's upper bounds). */
  record(
    name: string,
    labels: Record<string, string | number>,
    buckets: readonly number[],
    value: number,
    traceId: string,
  ): void {
    const bound = buckets.find((b) => value <= b);
    const key = bucketKey(
      `${name}_bucket`,
      Object.entries(labels).map(([k, v]) => [k, escape(String(v))]),
      bound === undefined ? '+Inf' : String(bound),
    );
    this.latest.set(key, ` # {trace_id="${traceId}"} ${value} ${(Date.now() / 1000).toFixed(3)}`);
  }

  get size(): number {
    return this.latest.size;
  }

  /** A sample line of an OpenMetrics exposition with its bucket's exemplar appended, if it has one. */
  annotate(line: string): string {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*_bucket)\{(.*)\} \S+$/.exec(line);
    if (!m) return line;
    const labels: [string, string][] = [];
    let le: string | undefined;
    for (const pair of (m[2] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (pair[1] === 'le') le = canonicalLe(pair[2] as string);
      else labels.push([pair[1] as string, pair[2] as string]);
    }
    if (le === undefined) return line;
    const exemplar = this.latest.get(bucketKey(m[1] as string, labels, le));
    return exemplar === undefined ? line : `${line}${exemplar}`;
  }
}
