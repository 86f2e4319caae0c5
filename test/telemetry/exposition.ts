/** Reading Prometheus text exposition in tests. */

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of a Prometheus text (or OpenMetrics) exposition. */
export function parseExposition(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[4]) });
  }
  return out;
}

/** The value of the one series named `name` whose labels include `labels` (undefined when none). */
export function valueOf(
  series: Series[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const hit = series.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value;
}
