/**
 * A worker in the background (`omnivibe worker start --detach`, `stop`,
 * `status`): its pidfile `./run/worker.pid` and log `./logs/worker.log`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface DetachPaths {
  pidFile: string;
  logFile: string;
}

export function detachPaths(cwd = process.cwd()): DetachPaths {
  return { pidFile: path.join(cwd, 'run', 'worker.pid'), logFile: path.join(cwd, 'logs', 'worker.log') };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export function readPid(p: DetachPaths): number | null {
  if (!fs.existsSync(p.pidFile)) return null;
  const pid = Number(fs.readFileSync(p.pidFile, 'utf8').trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Starts `omnivibe worker <args>` in the background; writes the pidfile; output goes to the log file. */
export function startDetached(
  workerArgs: string[],
  p: DetachPaths = detachPaths(),
): { pid: number; alreadyRunning: boolean } {
  const existing = readPid(p);
  if (existing && alive(existing)) return { pid: existing, alreadyRunning: true };
  fs.mkdirSync(path.dirname(p.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(p.logFile), { recursive: true });
  const out = fs.openSync(p.logFile, 'a');
  const script = process.argv[1] as string;
  const child = spawn(process.execPath, [...process.execArgv, script, 'worker', ...workerArgs], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
  });
  child.unref();
  fs.closeSync(out);
  fs.writeFileSync(p.pidFile, `${child.pid}\n`);
  return { pid: child.pid as number, alreadyRunning: false };
}

/** SIGTERM to the detached worker, then waits up to `waitMs` for it to exit. */
export async function stopDetached(
  waitMs: number,
  p: DetachPaths = detachPaths(),
): Promise<'not-running' | 'stopped' | 'timeout'> {
  const pid = readPid(p);
  if (!pid || !alive(pid)) {
    fs.rmSync(p.pidFile, { force: true });
    return 'not-running';
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      fs.rmSync(p.pidFile, { force: true });
      return 'stopped';
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'timeout';
}

export function detachedStatus(p: DetachPaths = detachPaths()): { pid: number | null; running: boolean } {
  const pid = readPid(p);
  return { pid, running: pid !== null && alive(pid) };
}
