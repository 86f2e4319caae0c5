/**
 * `npm start` as a process manager or a container runs it: SIGINT or SIGTERM to
 * npm stops the server (npm passes the signal on; no shell stays between them),
 * and a clean stop leaves nothing but the data files (no migration lock).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { embeddedEnabled } from '../support/backends.js';
import { builtFile } from '../support/build.js';
import { freePort } from '../support/services.js';

const until = async (check: () => Promise<boolean>, ms: number, what: string) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
};
const answers = (port: number) =>
  fetch(`http://127.0.0.1:${port}/health`).then(
    (r) => r.ok,
    () => false,
  );

describe.runIf(embeddedEnabled())('npm start', () => {
  beforeAll(() => void builtFile(path.resolve('dist/main/cli.js')), 120_000);

  it.each(['SIGINT', 'SIGTERM'] as const)(
    'stops the server on %s to npm, leaving no lock file',
    async (signal) => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-npm-start-'));
      const port = await freePort();
      const npm: ChildProcess = spawn('npm', ['start'], {
        env: {
          ...process.env,
          DATA_DIR: dataDir,
          PORT: String(port),
          LOG_LEVEL: 'warn',
          DATABASE_URL: '',
          REDIS_URL: '',
        },
        stdio: 'ignore',
      });
      const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
      await until(() => answers(port), 30_000, 'the server to answer');
      npm.kill(signal);
      await exited;
      await until(async () => !(await answers(port)), 15_000, 'the server to stop listening');
      expect(fs.readdirSync(dataDir).sort()).toEqual(['jobs.db', 'omnivibe.db']);
    },
    90_000,
  );
});
