/**
 * Benchmark output: one JSON object per result on stdout, and a readable table
 * on stderr when the run ends. Every bench uses this format:
 *   {"bench","case","backend","metric","value","unit"[, "baseline", "ratio"], "load_1m", ...}
 * `load_1m` is the machine's one-minute load average when the result was taken: figures
 * from a loaded machine are not comparable with a quiet one's.
 */
import os from 'node:os';

export interface BenchResult {
  bench: string;
  case: string;
  backend: string;
  metric: string;
  value: number;
  unit: string;
  /** The same metric of the baseline measured in the same run. */
  baseline?: number;
  /** value / baseline. */
  ratio?: number;
  /** A short remark for the table (other ratios, conditions). */
  note?: string;
  /** Free-form context (sizes, connections...). */
  [extra: string]: unknown;
}

const results: BenchResult[] = [];

const round = (v: number) => (Math.abs(v) >= 100 ? Math.round(v * 10) / 10 : Math.round(v * 1000) / 1000);

/** Prints one result line now and keeps it for the closing table. */
export function emit(r: BenchResult): void {
  const out: BenchResult = { ...r, value: round(r.value), load_1m: loadAverage()[0] };
  if (r.baseline !== undefined) {
    out.baseline = round(r.baseline);
    out.ratio = r.ratio !== undefined ? round(r.ratio) : round(r.value / r.baseline);
  }
  results.push(out);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Writes the readable table of everything emitted to stderr. */
export function printTable(): void {
  const rows = results.map((r) => [
    r.bench,
    r.case,
    r.backend,
    r.metric,
    `${r.value} ${r.unit}`,
    r.baseline !== undefined ? `${r.baseline}` : '',
    r.ratio !== undefined ? `${r.ratio}` : '',
    r.note ?? '',
  ]);
  const header = ['bench', 'case', 'backend', 'metric', 'value', 'baseline', 'ratio', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  process.stderr.write(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows) process.stderr.write(`${line(r)}\n`);
  process.stderr.write(`load average at the end: ${loadAverage().join(' ')}\n`);
}

/** The 1, 5 and 15-minute load averages, two decimals. */
export const loadAverage = (): number[] => os.loadavg().map((l) => Math.round(l * 100) / 100);

/** Percentile (0..100) of a numeric sample, by nearest rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

/** True when the bench was started with --quick (a run under a minute). */
export const isQuick = () => process.argv.includes('--quick');
