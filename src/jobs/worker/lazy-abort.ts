import type { AbortSource } from '../sandbox/sandbox-pool.js';

/**
 * An AbortController made on first use of its signal: most attempts finish without anyone
 * looking at it, and one controller per job is measurable at thousands of jobs per second.
 * An abort before the signal exists is remembered and applied when it is made.
 */
export class LazyAbort implements AbortSource {
  private ac: AbortController | undefined;
  private listeners: Array<(reason: unknown) => void> | undefined;
  aborted = false;
  reason: unknown;

  /** For the sandbox pool: hears the abort without making a signal. */
  subscribe(listener: (reason: unknown) => void): () => void {
    (this.listeners ??= []).push(listener);
    return () => {
      const i = this.listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.listeners?.splice(i, 1);
    };
  }

  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.aborted) this.ac.abort(this.reason);
    }
    return this.ac.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.ac?.abort(reason);
    for (const l of this.listeners?.splice(0) ?? []) l(reason);
  }
}

/** An abort reason with a name the retry policy recognises (SHUTDOWN_ABORT, LEASE_LOST). */
export function namedAbort(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}
