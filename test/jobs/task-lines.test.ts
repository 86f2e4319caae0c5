/**
 * The runtime's per-attempt lines, built as text: the same JSON pino writes for
 * the same fields (key order included), the same level filtering.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TaskLines } from '../../src/jobs/task-lines.js';
import { createLogger } from '../../src/main/logger.js';

const tmp = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-lines-')), 'out.log');
const read = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const { time, ...rest } = JSON.parse(l) as Record<string, unknown>;
      expect(typeof time).toBe('number');
      return rest;
    });
const turn = () => new Promise((r) => setImmediate(r));

const f = { jobId: '7', task: 'diagnostics.noop', queue: 'default', attempt: 2 };
const failure = 'Error: "quoted", a\nnewline, \\ and ü 🎬';

describe('task lines', () => {
  it('are the lines pino writes for the same fields', async () => {
    const [a, b] = [tmp(), tmp()];
    const viaPino = createLogger({ logLevel: 'info' }, a).child({ worker: 'host:1:abc' });
    const built = new TaskLines(createLogger({ logLevel: 'info' }, b).child({ worker: 'host:1:abc' }));
    viaPino.info({ ...f, waitMs: 3 }, 'task started');
    built.started(f, 3);
    viaPino.warn(
      { ...f, retryInMs: 1500, status: 'retrying', waitMs: 3, runMs: 9, error: failure },
      'task finished',
    );
    built.finished(f, { retryInMs: 1500, status: 'retrying', waitMs: 3, runMs: 9, error: failure });
    viaPino.info({ ...f, status: 'succeeded', waitMs: 1, runMs: 0 }, 'task finished');
    built.finished(f, { status: 'succeeded', waitMs: 1, runMs: 0 });
    await turn();
    const expected = read(a);
    const got = read(b);
    expect(expected).toHaveLength(3);
    expect(got).toEqual(expected);
    expect(got.map((l) => Object.keys(l))).toEqual(expected.map((l) => Object.keys(l)));
    expect(got[1]).toMatchObject({ level: 40, error: failure, worker: 'host:1:abc' });
  });

  it('follow the logger level', async () => {
    const file = tmp();
    const lines = new TaskLines(createLogger({ logLevel: 'warn' }, file));
    lines.started(f, 1);
    lines.finished(f, { status: 'succeeded', waitMs: 1, runMs: 1 });
    lines.finished(f, { status: 'failed', waitMs: 1, runMs: 1, error: 'Error: x' });
    await turn();
    expect(read(file).map((l) => [l.status, l.level])).toEqual([['failed', 40]]);
  });
});
