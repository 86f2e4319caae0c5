/**
 * Starts real PostgreSQL and Redis servers from the machine's binaries on
 * random loopback ports, for tests and benchmarks (no Docker here). Each
 * server lives in its own temporary directory and is stopped by its PID.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface RunningService {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Stops and starts the server again on the same port and data (outage tests). */
  restart?(downMs?: number): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function findBinary(name: string): string | undefined {
  const candidates: string[] = [];
  const pgRoot = '/usr/lib/postgresql';
  if (fs.existsSync(pgRoot)) {
    for (const v of fs.readdirSync(pgRoot).sort().reverse())
      candidates.push(path.join(pgRoot, v, 'bin', name));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir) candidates.push(path.join(dir, name));
  return candidates.find((p) => fs.existsSync(p));
}

export function postgresAvailable(): boolean {
  return findBinary('initdb') !== undefined && findBinary('postgres') !== undefined;
}

export function redisAvailable(): boolean {
  return findBinary('redis-server') !== undefined;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Spawn options that run PostgreSQL binaries as the `postgres` user when we are root
 * (initdb and postgres refuse root). Spawning with uid/gid, not through runuser, keeps
 * the child's PID the server's own, so signals reach it.
 */
function postgresUser(): { uid: number; gid: number } | Record<string, never> {
  if (!isRoot()) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms: ${String(lastErr)}`);
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export async function startPostgres(): Promise<RunningService> {
  const initdb = findBinary('initdb');
  const postgres = findBinary('postgres');
  if (!initdb || !postgres) throw new Error('PostgreSQL binaries (initdb, postgres) not found');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-pg-'));
  const dataDir = path.join(dir, 'data');
  if (isRoot()) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const user = postgresUser();
  execFileSync(
    initdb,
    ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'],
    {
      stdio: 'pipe',
      ...user,
    },
  );
  const port = await freePort();
  let child: ChildProcess;
  const launch = async () => {
    const args = [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=300',
      '-c',
      'shared_buffers=256MB',
    ];
    child = spawn(postgres, args, { stdio: 'ignore', ...user });
    await waitFor(
      async () => {
        const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('select 1');
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      30_000,
      'PostgreSQL',
    );
  };
  await launch();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    // SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
    async stop() {
      await stopChild(child, 'SIGINT');
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart(downMs = 0) {
      await stopChild(child, 'SIGINT');
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
  };
}

export async function startRedis(): Promise<RunningService> {
  const bin = findBinary('redis-server');
  if (!bin) throw new Error('redis-server not found');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-redis-'));
  const port = await freePort();
  let child: ChildProcess;
  const launch = async () => {
    child = spawn(
      bin,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: 'ignore' },
    );
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const sock = net.connect(port, '127.0.0.1');
          sock.once('connect', () => {
            sock.write('PING\r\n');
          });
          sock.once('data', (d) => {
            sock.destroy();
            resolve(d.toString().startsWith('+PONG'));
          });
          sock.once('error', () => resolve(false));
        }),
      15_000,
      'Redis',
    );
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart(downMs = 0) {
      await stopChild(child);
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
  };
}

/** Creates a fresh database on a running PostgreSQL and returns its URL (one per test file). */
export async function createPostgresDatabase(serverUrl: string, prefix = 'ov_test'): Promise<string> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
