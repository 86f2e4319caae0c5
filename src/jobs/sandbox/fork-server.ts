/**
 * The sandbox fork server: the child module started once per worker, which
 * loads everything a child needs and then starts each sandbox child as a copy
 * of itself with fork(2) (native/sandbox-fork). A fresh Node process costs
 * about 65 ms of CPU here before it runs a line; a fork of the server costs 1 to
 * 2 ms, and the child inherits its loaded handlers. Children are recycled every
 * --max-tasks-per-child tasks, so this is what recycling costs.
 *
 * Node does not support fork(); the server keeps to what makes it safe:
 * - V8 runs with --single-threaded (the pool starts the server so): a child has
 *   only the thread that forked, and V8 work posted to background threads
 *   would never run (a child's GC waits for it forever);
 * - the server opens nothing but its IPC channel and uses no libuv thread-pool
 *   work before it forks; its event loop is re-created in the child
 *   (uv_loop_fork), and the child's copy of the channel is cut off before any
 *   JavaScript runs there;
 * - what Node caches per process is renewed in the child: process.pid and
 *   process.ppid, Math.random's state and crypto.randomUUID's buffer, which
 *   every child would otherwise share with its siblings (OpenSSL itself is
 *   fork-safe: it reseeds on a new pid);
 * - a child ends with _exit(2): Node's exit would join threads that exist only
 *   in the server (libuv's thread pool, which the ESM loader starts);
 * - a child gets SIGKILL when the server dies, and the server exits with its
 *   worker: no child outlives the worker, even one stuck in a loop.
 *
 * The server speaks the launcher's protocol (protocol.ts): it answers `fork`
 * with `spawned` and reports every child's exit.
 */
import crypto, { getRandomValues } from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { constants } from 'node:os';
import { getHeapCodeStatistics } from 'node:v8';
import { type FromLauncher, SANDBOX_TOKEN_ENV, type ToLauncher } from './protocol.js';

/** Set (to 1) in the environment of a child module that is to run as a fork server. */
export const SANDBOX_FORK_SERVER_ENV = 'OV_SANDBOX_FORK_SERVER';
/** The V8 flags a fork server starts with: no background threads (see above), and gc() for after its preload. */
export const FORK_SERVER_NODE_FLAGS = ['--single-threaded', '--expose-gc'];

interface SandboxFork {
  fork(severFd: number): number;
  reap(): Array<{ pid: number; code: number | null; signal: number | null }>;
  getpid(): number;
  exit(code: number): never;
}

export const isForkServer = () => process.env[SANDBOX_FORK_SERVER_ENV] === '1';

const signalName = (n: number) =>
  Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

export interface ForkServerOptions {
  /** Loads what every child needs; the server reports ready after it. */
  preload(): Promise<void>;
  /** Runs in each child, right after the fork. */
  startChild(): void;
}

const ignore = () => undefined;

export function serveForks(opts: ForkServerOptions): void {
  if (!process.send || !process.channel)
    throw new Error('a sandbox fork server must be started with an IPC channel');
  const channelFd = (process.channel as unknown as { fd: number }).fd;
  const native = createRequire(import.meta.url)('@omnivibe/sandbox-fork') as SandboxFork;
  const send = (m: FromLauncher) => void (process.connected && process.send?.(m));
  /** Live children: pid to token. */
  const children = new Map<number, string>();

  const reap = () => {
    for (const { pid, code, signal } of native.reap()) {
      const token = children.get(pid);
      if (token === undefined) continue;
      children.delete(pid);
      send({ type: 'exit', token, status: signal === null ? String(code) : signalName(signal) });
    }
  };

  const onMessage = (m: ToLauncher) => {
    if (m.type !== 'fork') throw new Error(`a sandbox fork server got a ${m.type} request`);
    let pid: number;
    try {
      pid = native.fork(channelFd);
    } catch (err) {
      send({ type: 'exit', token: m.token, status: `fork failed: ${(err as Error).message}` });
      return;
    }
    if (pid === 0) {
      becomeChild(native.getpid(), m.token);
      opts.startChild();
      return;
    }
    children.set(pid, m.token);
    send({ type: 'spawned', token: m.token, pid });
  };
  const onDisconnect = () => process.exit(0);

  /** In the child: drop the server's part, renew what Node cached per process. */
  function becomeChild(pid: number, token: string): void {
    process.off('disconnect', onDisconnect);
    process.off('SIGCHLD', reap);
    // Requests the server read with this one are still queued for this tick: they are the server's.
    process.off('message', onMessage).on('message', ignore);
    setImmediate(() => {
      process.off('message', ignore);
      if (process.connected) process.disconnect();
    });
    const serverPid = process.pid;
    Object.defineProperty(process, 'pid', { value: pid, enumerable: true, configurable: true });
    Object.defineProperty(process, 'ppid', { value: serverPid, enumerable: true, configurable: true });
    delete process.env[SANDBOX_FORK_SERVER_ENV];
    process.env[SANDBOX_TOKEN_ENV] = token;
    Math.random = secureRandom();
    // Node serves random UUIDs from a buffer filled once per process: the server's, if it drew one
    // (tsx does). The child's are drawn without it.
    const randomUUID = crypto.randomUUID;
    const freshUUID = () => randomUUID({ disableEntropyCache: true });
    crypto.randomUUID = freshUUID;
    Object.defineProperty(globalThis.crypto, 'randomUUID', { value: freshUUID, configurable: true });
    syncBuiltinESMExports();
    // Node's own exit would join threads that only the server has: end at once instead, however the
    // child ends (process.exit, an empty event loop, an uncaught error, whose 'exit' comes before
    // Node prints it).
    process.on('uncaughtExceptionMonitor', (err, origin) =>
      process.stderr.write(`sandbox child ${pid}: ${origin}: ${err.stack ?? String(err)}\n`),
    );
    process.on('exit', (code) => native.exit(code));
  }

  process.on('SIGCHLD', reap);
  process.on('message', onMessage);
  process.on('disconnect', onDisconnect);
  opts.preload().then(
    () => {
      // Children start from a compact heap with an empty young generation: their first scavenge
      // has nothing to copy, and they copy fewer of the server's pages.
      (globalThis as unknown as { gc(): void }).gc();
      // Without background threads that GC's sweeping is left to whoever allocates next: every child.
      // Collecting code statistics walks the heap, which finishes the sweeping here, once.
      getHeapCodeStatistics();
      send({ type: 'ready' });
    },
    (err: unknown) => {
      process.stderr.write(`sandbox fork server: preload failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Math.random from the OS's randomness, 53 bits a number, drawn in blocks. */
function secureRandom(): () => number {
  const block = new Uint32Array(1024);
  let i = block.length;
  return () => {
    if (i === block.length) {
      getRandomValues(block);
      i = 0;
    }
    const hi = (block[i++] as number) >>> 5;
    const lo = (block[i++] as number) >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  };
}
