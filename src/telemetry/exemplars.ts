/**
 * OpenMetrics exemplars: with tracing on, the latest observation of each histogram bucket keeps the
 * trace id of the (sampled) span it was made in, and /metrics in OpenMetrics shows it after the
 * bucket's sample (`... 12 # {trace_id="4bf9..."} 0.0042 1733462400.123`), so a dashboard jumps from
 * a slow bucket to a trace that fell in it. The Prometheus text format has no exemplars.
 *
 * Bounded like the series: one exemplar per bucket of each labelled histogram (the cardinality rule).
 * Recording is on the request path, so it only files the observation under its label values; the
 * text is made when scraped.
 */

interface Exemplar {
  traceId: string;
  value: number;
  /** Epoch ms. */
  at: number;
}

interface Series {
  name: string;
  labels: Record<string, string | number>;
  buckets: readonly number[];
  /** Per bucket (the last one is +Inf), the latest exemplar. */
  latest: (Exemplar | undefined)[];
}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** A bucket's identity as exposed: metric name, its labels sorted (values escaped), and `le` as a number. */
function bucketKey(name: string, labels: [string, string][], le: string): string {
  const sorted = labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${name}{${sorted.map(([k, v]) => `${k}="${v}"`).join(',')}}${le}`;
}

const canonicalLe = (le: string) => (le === '+Inf' ? '+Inf' : String(Number(le)));

export class Exemplars {
  private readonly series = new Map<string, Series>();

  /**
   * Keeps `traceId` as the exemplar of the bucket `value` falls in (`buckets`: the histogram's upper
   * bounds); `labels` in a fixed order per metric (their values make the series key).
   */
  record(
    name: string,
    labels: Record<string, string | number>,
    buckets: readonly number[],
    value: number,
    traceId: string,
  ): void {
    let key = name;
    for (const k in labels) key += `\u0000${labels[k]}`;
    let s = this.series.get(key);
    if (!s) {
      s = { name, labels, buckets, latest: new Array<Exemplar | undefined>(buckets.length + 1) };
      this.series.set(key, s);
    }
    let i = 0;
    while (i < buckets.length && value > (buckets[i] as number)) i++;
    s.latest[i] = { traceId, value, at: Date.now() };
  }

  get size(): number {
    return this.series.size;
  }

  /** For one exposition: each bucket line's identity → the exemplar text to append. */
  private texts(): Map<string, string> {
    const out = new Map<string, string>();
    for (const s of this.series.values()) {
      const labels = Object.entries(s.labels).map(([k, v]): [string, string] => [k, escape(String(v))]);
      s.latest.forEach((e, i) => {
        if (!e) return;
        const le = i < s.buckets.length ? String(s.buckets[i]) : '+Inf';
        out.set(
          bucketKey(`${s.name}_bucket`, [...labels], le),
          ` # {trace_id="${e.traceId}"} ${e.value} ${(e.at / 1000).toFixed(3)}`,
        );
      });
    }
    return out;
  }

  /** An annotator for one exposition: a sample line with its bucket's exemplar appended, if it has one. */
  annotator(): (line: string) => string {
    const texts = this.texts();
    return (line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*_bucket)\{(.*)\} \S+$/.exec(line);
      if (!m) return line;
      const labels: [string, string][] = [];
      let le: string | undefined;
      for (const pair of (m[2] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        if (pair[1] === 'le') le = canonicalLe(pair[2] as string);
        else labels.push([pair[1] as string, pair[2] as string]);
      }
      if (le === undefined) return line;
      const exemplar = texts.get(bucketKey(m[1] as string, labels, le));
      return exemplar === undefined ? line : `${line}${exemplar}`;
    };
  }
}
