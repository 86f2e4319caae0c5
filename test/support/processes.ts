import type { ChildProcess } from 'node:child_process';

/**
 * Stops child processes a test started: SIGTERM, then SIGKILL to any still running after
 * `graceMs`. Resolves when every one has exited.
 */
export function stopChildren(children: readonly ChildProcess[], graceMs = 10_000): Promise<void> {
  return Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.kill('SIGKILL'), graceMs);
          c.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  ).then(() => undefined);
}
