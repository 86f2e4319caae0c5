/**
 * The process logger: the lines of one event-loop turn are written together at
 * its end (or at 64 KB), and nothing waiting is lost when the process exits,
 * normally or by an uncaught error.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/main/logger.js';

const tmp = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-log-')), 'out.log');
const lines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; level: number; pid: number; n?: number });
const turn = () => new Promise((r) => setImmediate(r));

describe('process logger', () => {
  it('writes the lines of a turn at its end, as JSON with level, pid and fields', async () => {
    const file = tmp();
    const log = createLogger({ logLevel: 'info' }, file);
    log.info({ n: 1 }, 'first');
    log.debug('below the level');
    log.warn({ n: 2 }, 'second');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    await turn();
    const out = lines(file);
    expect(out.map((l) => [l.msg, l.n, l.level])).toEqual([
      ['first', 1, 30],
      ['second', 2, 40],
    ]);
    expect(out[0]?.pid).toBe(process.pid);
  });

  it('writes at once when 64 KB are waiting, and loses no line of a big burst', async () => {
    const file = tmp();
    const log = createLogger({ logLevel: 'info' }, file);
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < 300; i++) log.info({ pad, n: i }, `line ${i}`);
    // Still within the same turn: everything up to the last 64 KB boundary is on disk.
    expect(lines(file).length).toBeGreaterThanOrEqual(200);
    await turn();
    // Every line whole and in order (writes larger than the destination's 16 KB write size are split).
    expect(lines(file).map((l) => l.n)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it.each([
    ['process.exit', "log.info('bye'); process.exit(3);", 3],
    ['an uncaught error', "log.info('bye'); throw new Error('boom');", 1],
  ])('flushes what is waiting when the process ends by %s', (_how, code, status) => {
    const script = `import { createLogger } from ${JSON.stringify(path.resolve('src/main/logger.ts'))};
      const log = createLogger({ logLevel: 'info' }); ${code}`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(status);
    expect(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
    ).toEqual(['bye']);
  });
});
