import type { Socket } from 'node:net';
import type { ErrorInfo } from '../errors.js';

/**
 * How the worker, its launcher and the sandbox children talk.
 *
 * The worker forks one small process, the launcher (launcher.ts), which
 * starts each child as a fresh Node process. The worker never starts a child
 * itself: a fork copies the forking process's page tables (a few ms for a
 * worker of 100 MB and more), and the worker's event loop, and under
 * `omnivibe start` the API in it, would stop for that on every recycle. A child connects back to the worker over a Unix socket: its
 * path and the child's one-time token come in the environment.
 *
 * Children speak newline-delimited JSON on the socket; the launcher speaks
 * child_process IPC.
 */
export const SANDBOX_SOCKET_ENV = 'OV_SANDBOX_SOCKET';
export const SANDBOX_TOKEN_ENV = 'OV_SANDBOX_TOKEN';
/** Set (to 1) when the worker traces: the child starts its own exporter and continues each attempt's span. */
export const SANDBOX_TRACING_ENV = 'OV_SANDBOX_TRACING';

export type ToChild =
  | {
      type: 'run';
      id: string;
      name: string;
      payload: unknown;
      attempt: number;
      maxAttempts: number;
      softTimeoutMs?: number;
      /** The worker's attempt span the child's span continues (tracing on). */
      trace?: string | undefined;
    }
  | { type: 'abort'; id: string; reason: 'cancel' | 'shutdown' };

export type FromChild =
  | { type: 'ready'; token: string; pid: number }
  | { type: 'progress'; id: string; value: number }
  | { type: 'done'; id: string; result: unknown; rssMb: number }
  | { type: 'error'; id: string; error: ErrorInfo; rssMb: number }
  /** Something the task measured (a vendor call, a render) for the worker's metrics: opaque here. */
  | { type: 'report'; report: unknown };

/** To the launcher: start a fresh Node process. */
export interface ToLauncher {
  type: 'spawn';
  token: string;
  /** Node flags, then the child's entry module. */
  args: string[];
  env: NodeJS.ProcessEnv;
}

export type FromLauncher =
  | { type: 'ready' }
  | { type: 'spawned'; token: string; pid: number }
  /** What a child wrote to stderr (an uncaught error, a Node warning): the worker logs it. */
  | { type: 'stderr'; token: string; text: string }
  | { type: 'exit'; token: string; status: string };

/**
 * Reads newline-delimited JSON from a socket (JSON.stringify never writes a raw
 * newline). A line that is not JSON destroys the socket with the parse error.
 */
export function onLines(socket: Socket, handler: (msg: unknown) => void): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    let start = 0;
    let nl = chunk.indexOf('\n');
    try {
      if (nl < 0) {
        pending += chunk;
        return;
      }
      const first = pending + chunk.slice(0, nl);
      pending = '';
      handler(JSON.parse(first));
      start = nl + 1;
      while ((nl = chunk.indexOf('\n', start)) >= 0) {
        handler(JSON.parse(chunk.slice(start, nl)));
        start = nl + 1;
      }
      pending = chunk.slice(start);
    } catch (err) {
      socket.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

export const line = (msg: ToChild | FromChild): string => `${JSON.stringify(msg)}\n`;
