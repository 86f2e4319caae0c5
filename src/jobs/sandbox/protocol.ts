import type { Socket } from 'node:net';
import type { ErrorInfo } from '../errors.js';

/**
 * How the worker, its launcher and the sandbox children talk.
 *
 * The worker forks one small process that starts the children: by default a
 * fork server (fork-server.ts), which forks each child from itself, or, with
 * WORKER_SANDBOX_START=spawn, a launcher (launcher.ts), which starts each as a
 * fresh Node process. The worker never forks a child itself: a fork copies the
 * forking process's page tables, about 7 ms for a 120 MB worker against about
 * 1 ms for a small process, and the worker's event loop would stop for that on
 * every recycle. A child connects back to the worker over a Unix socket: its
 * path and the child's one-time token come in the environment.
 *
 * Children speak newline-delimited JSON on the socket; the launcher and the
 * fork server speak child_process IPC.
 */
export const SANDBOX_SOCKET_ENV = 'OV_SANDBOX_SOCKET';
export const SANDBOX_TOKEN_ENV = 'OV_SANDBOX_TOKEN';

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
  | { type: 'ready'; token: string; pid: number }
  | { type: 'progress'; id: string; value: number }
  | { type: 'done'; id: string; result: unknown; rssMb: number }
  | { type: 'error'; id: string; error: ErrorInfo; rssMb: number };

export type ToLauncher =
  | {
      /** To the launcher: start a fresh Node process. */
      type: 'spawn';
      token: string;
      /** Node flags, then the child's entry module. */
      args: string[];
      env: NodeJS.ProcessEnv;
    }
  /** To a fork server (fork-server.ts): fork a child; the token goes in its environment. */
  | { type: 'fork'; token: string };

export type FromLauncher =
  | { type: 'ready' }
  | { type: 'spawned'; token: string; pid: number }
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
