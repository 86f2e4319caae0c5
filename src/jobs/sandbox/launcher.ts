/**
 * The sandbox launcher: a small process the worker forks once, which starts
 * sandbox children on request and reports their pids and exits (see protocol.ts
 * for why the worker does not fork them itself). It exits with its worker: once
 * the IPC channel closes. Children it started stay connected to the worker on
 * their own sockets and end when those close.
 */
import { spawn } from 'node:child_process';
import type { FromLauncher, ToLauncher } from './protocol.js';

// Ctrl-C reaches the whole process group: the worker decides when sandbox processes end (child.ts).
process.on('SIGINT', () => undefined);

const send = (m: FromLauncher) => void (process.connected && process.send?.(m));

process.on('message', (m: ToLauncher) => {
  if (m.type !== 'spawn') throw new Error(`the sandbox launcher got a ${m.type} request`);
  const child = spawn(process.execPath, m.args, { env: m.env, stdio: ['ignore', 'inherit', 'inherit'] });
  child.once('spawn', () => send({ type: 'spawned', token: m.token, pid: child.pid ?? -1 }));
  // A failed spawn emits 'error' and then no 'exit' (ENOENT, EAGAIN...).
  child.once('error', (err) => {
    if (child.pid === undefined)
      send({ type: 'exit', token: m.token, status: `spawn failed: ${err.message}` });
  });
  child.once('exit', (code, signal) =>
    send({ type: 'exit', token: m.token, status: String(signal ?? code) }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
