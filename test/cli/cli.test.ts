/** The `omnivibe` command end to end, as a user runs it (on a SQLite file in a temp dir). */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedEnabled } from '../support/backends.js';
import { freePort } from '../support/services.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', path.resolve('src/main/cli.ts')];

describe.runIf(embeddedEnabled())('omnivibe CLI', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-cli-'));
    env = { ...process.env, DATA_DIR: dir, LOG_LEVEL: 'warn', DATABASE_URL: '' };
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run('node', [...CLI, ...args], { env: { ...env, ...extra } });

  it('prints help for the program and each command', async () => {
    const { stdout } = await cli(['--help']);
    for (const cmd of ['start', 'serve', 'worker', 'migrate', 'keys', 'seed-demo', 'demo'])
      expect(stdout).toContain(cmd);
    expect((await cli(['keys', 'create', '--help'])).stdout).toContain('--role');
  });

  it('prints help with exit code 0 whatever the environment: configuration is read only when a command runs', async () => {
    const bad = { PORT: 'abc', WORKER_CONCURRENCY: '0', DATABASE_URL: 'mysql://x' };
    for (const args of [
      ['--help'],
      ['worker', '--help'],
      ['migrate', 'status', '--help'],
      ['demo', '--help'],
    ])
      expect((await cli(args, bad)).stdout, args.join(' ')).toContain('Usage: omnivibe');
  }, 120_000);

  it('without a command prints the help (exit 0); --version prints the version; an unknown command exits 1', async () => {
    expect((await cli([])).stdout).toMatch(/^Usage: omnivibe \[options\] \[command\]/);
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
    expect((await cli(['--version'])).stdout.trim()).toBe(pkg.version);
    await expect(cli(['bogus'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining("unknown command 'bogus'"),
    });
  }, 90_000);

  it('migrates, reports status, and is idempotent', async () => {
    expect((await cli(['migrate'])).stdout).toContain('applied: 0001-initial-schema');
    expect((await cli(['migrate'])).stdout).toContain('up to date');
    expect((await cli(['migrate', 'status'])).stdout).toMatch(/applied\s+0001-initial-schema/);
  });

  it('creates, lists and revokes keys; refuses a bad role', async () => {
    const { stdout } = await cli(['keys', 'create', '--role', 'editor', '--name', 'ci bot']);
    expect(stdout.trim()).toMatch(/^ov_[\w-]+_[\w-]+$/);
    const list = JSON.parse((await cli(['keys', 'list', '--json'])).stdout) as {
      id: number;
      name: string;
      key_hash?: string;
    }[];
    const mine = list.find((k) => k.name === 'ci bot');
    expect(mine).toBeDefined();
    expect(mine?.key_hash).toBeUndefined();
    expect((await cli(['keys', 'revoke', String(mine?.id)])).stdout).toContain('revoked');
    await expect(cli(['keys', 'create', '--role', 'root', '--name', 'x'])).rejects.toMatchObject({ code: 1 });
  }, 90_000);

  it('stops with exit code 2 and names the variable on bad configuration', async () => {
    await expect(cli(['migrate'], { PORT: 'abc' })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('PORT="abc"'),
    });
  });

  it('start: prints an admin key once on first start, serves it, and shuts down on SIGTERM', async () => {
    const fresh = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-cli-start-'));
    const port = await freePort();
    const startOnce = async () => {
      const child = spawn('node', [...CLI, 'start'], {
        env: { ...env, DATA_DIR: fresh, PORT: String(port) },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const ok = await fetch(`http://127.0.0.1:${port}/ready`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return { child, out: () => out };
    };
    const first = await startOnce();
    const key = /(ov_[\w-]+_[\w-]+)/.exec(first.out())?.[1];
    expect(key).toBeDefined();
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/keys`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(200);
    const exited = new Promise<number | null>((r) => first.child.once('exit', (code) => r(code)));
    first.child.kill('SIGTERM');
    expect(await exited).toBe(0);

    const second = await startOnce();
    expect(second.out()).not.toMatch(/ov_[\w-]+_[\w-]+/);
    const exited2 = new Promise<number | null>((r) => second.child.once('exit', (code) => r(code)));
    second.child.kill('SIGTERM');
    expect(await exited2).toBe(0);
    fs.rmSync(fresh, { recursive: true, force: true });
  }, 60_000);

  it('start: OMNIVIBE_ADMIN_KEY is registered instead of printing a new key', async () => {
    const fresh = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-cli-env-'));
    const port = await freePort();
    const adminKey = 'my-admin-key-0123456789abcdef';
    const child = spawn('node', [...CLI, 'start'], {
      env: { ...env, DATA_DIR: fresh, PORT: String(port), OMNIVIBE_ADMIN_KEY: adminKey },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let status = 0;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && status !== 200) {
      status = await fetch(`http://127.0.0.1:${port}/api/v1/keys`, {
        headers: { authorization: `Bearer ${adminKey}` },
      }).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect(out).not.toMatch(/ov_[\w-]+_[\w-]+/);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    fs.rmSync(fresh, { recursive: true, force: true });
  }, 60_000);

  it('seed-demo creates a Korean sample', async () => {
    const { stdout } = await cli(['seed-demo']);
    expect(JSON.parse(stdout)).toMatchObject({ client_id: expect.any(Number), blocks: 4 });
  });
});
