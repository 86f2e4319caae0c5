/**
 * The sandbox launcher: a small process the worker forks once, which starts
 * sandbox children on request and reports their pids, their stderr and their
 * exits (see protocol.ts for why the worker does not start them itself). It
 * exits with its worker: once the IPC channel closes. Children it started stay
 * connected to the worker on their own sockets and end when those close.
 * Their stdout (their pino log lines) is the worker's.
 */
import { spawn } from 'node:child_process';
import type { FromLauncher, ToLauncher } from './protocol.js';

// Ctrl-C reaches the whole process group: the worker decides when sandbox processes end (child.ts).
process.on('SIGINT', () => undefined);

const send = (m: FromLauncher) => void (process.connected && process.send?.(m));

process.on('message', (m: ToLauncher) => {
  // Each child leads a process group of its own (child.ts): the worker kills the group.
  const child = spawn(process.execPath, m.args, {
    env: m.env,
    stdio: ['ignore', 'inherit', 'pipe'],
    detached: true,
  });
  child.once('spawn', () => send({ type: 'spawned', token: m.token, pid: child.pid ?? -1 }));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => send({ type: 'stderr', token: m.token, text }));
  // A failed spawn emits 'error' and then no 'exit' (ENOENT, EAGAIN...).
  child.once('error', (err) => {
    if (child.pid === undefined)
      send({ type: 'exit', token: m.token, status: `spawn failed: ${err.message}` });
  });
  // 'close' comes after the child's stderr is read to its end: its last words are logged before its exit.
  child.once('close', (code, signal) =>
    send({ type: 'exit', token: m.token, status: String(signal ?? code) }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
