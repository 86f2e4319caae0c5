/**
 * The handlers of the diagnostic tasks that run in sandbox children, without
 * their declarations: a child imports only this module (no TypeBox, no
 * registry), so a child start costs little more than Node itself. The
 * declarations are in diagnostics.task.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Returns the child's pid (recycling tests). */
export async function noopPid(): Promise<{ pid: number }> {
  return { pid: process.pid };
}

export async function sleepHandler(
  p: { ms: number; ignoreAbort?: boolean; steps?: number },
  ctx: { signal: AbortSignal; progress(v: number): Promise<void> },
): Promise<{ slept_ms: number; pid: number }> {
  const steps = Math.max(1, p.steps ?? 1);
  const started = Date.now();
  for (let i = 1; i <= steps; i++) {
    await sleep(p.ms / steps, undefined, p.ignoreAbort ? {} : { signal: ctx.signal });
    if (p.steps) await ctx.progress(Math.round((100 * i) / steps));
  }
  return { slept_ms: Date.now() - started, pid: process.pid };
}

/** Burns CPU for `ms`. */
export async function burnCpu(p: { ms: number }): Promise<{ x: number }> {
  const end = Date.now() + p.ms;
  let x = 0;
  while (Date.now() < end) x = (x + Math.sqrt(x + 1)) % 1e9;
  return { x };
}
