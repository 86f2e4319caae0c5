import type { ErrorInfo } from '../errors.js';

/** Messages between the worker and a sandbox child (child_process IPC, JSON-serialisable). */
export type ToChild =
  | {
      type: 'run';
      id: string;
      name: string;
      payload: unknown;
      attempt: number;
      maxAttempts: number;
      softTimeoutMs?: number;
    }
  | { type: 'abort'; id: string; reason: 'cancel' | 'shutdown' };

export type FromChild =
  | { type: 'ready' }
  | { type: 'progress'; id: string; value: number }
  | { type: 'done'; id: string; result: unknown; rssMb: number }
  | { type: 'error'; id: string; error: ErrorInfo; rssMb: number };
