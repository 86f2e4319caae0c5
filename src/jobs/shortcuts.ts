/**
 * Fast paths that rely on a dependency's internals (BullMQ's script arguments and hash fields, pino's
 * private symbols, the SQL Kysely compiles). Each one is known in one file per dependency
 * (`bullmq/bullmq-internals.ts`, `pino-internals.ts`, `kysely-internals.ts`), probed when the process
 * starts, can be turned off by its own env variable (JobsConfig.shortcuts), and has a fallback through
 * the dependency's public API that gives the same result. Every use counts which path it took, so a
 * test (test/jobs/shortcuts.test.ts) fails when an upgrade makes a fast path fall back silently.
 */
import { SHORTCUT_NAMES, type ShortcutName } from '../config/jobs.js';

export interface ShortcutReport {
  name: ShortcutName;
  /** Turned on by configuration. */
  enabled: boolean;
  /** The probe's finding when it failed (the fast path is then not used). */
  unavailable?: string | undefined;
  /** Uses of the fast path and of the fallback since the process started. */
  fast: number;
  fallback: number;
}

export class Shortcuts {
  private readonly state = new Map<ShortcutName, ShortcutReport>();

  /** `enabled`: the shortcuts configuration turns on (all, unless an env switch turns one off). */
  constructor(enabled: Readonly<Record<ShortcutName, boolean>>) {
    for (const name of SHORTCUT_NAMES)
      this.state.set(name, { name, enabled: enabled[name], fast: 0, fallback: 0 });
  }

  /** Every shortcut on (tests and tools without a configuration). */
  static allOn(): Shortcuts {
    return new Shortcuts(
      Object.fromEntries(SHORTCUT_NAMES.map((n) => [n, true])) as Record<ShortcutName, boolean>,
    );
  }

  private get(name: ShortcutName): ShortcutReport {
    return this.state.get(name) as ShortcutReport;
  }

  /**
   * Runs a shortcut's probe: `probe` returns what the fast path needs from the dependency, or a string
   * saying what differs from the layout it expects. Returns the former, or undefined when the shortcut is
   * off or the probe found a difference (remembered: the shortcut is then unavailable in this process).
   */
  probe<T>(name: ShortcutName, probe: () => T | string): T | undefined {
    const s = this.get(name);
    if (!s.enabled) return undefined;
    let got: T | string;
    try {
      got = probe();
    } catch (err) {
      got = `the probe threw: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (typeof got !== 'string') return got;
    s.unavailable = got;
    return undefined;
  }

  /** Whether the fast path may be used: on, and its probe (if it ran) found the dependency as expected. */
  usable(name: ShortcutName): boolean {
    const s = this.get(name);
    return s.enabled && s.unavailable === undefined;
  }

  /** Counts a use of the fast path (`fast`) or of the fallback. */
  count(name: ShortcutName, fast: boolean): void {
    const s = this.get(name);
    if (fast) s.fast++;
    else s.fallback++;
  }

  report(): ShortcutReport[] {
    return SHORTCUT_NAMES.map((n) => ({ ...this.get(n) }));
  }
}
