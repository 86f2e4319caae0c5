/**
 * The runtime's per-attempt lines, built as text: the same JSON pino writes for
 * the same fields (key order included), the same level filtering.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { SHORTCUT_NAMES, type ShortcutName } from '../../src/config/jobs.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
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
const allOn = Object.fromEntries(SHORTCUT_NAMES.map((n) => [n, true])) as Record<ShortcutName, boolean>;
const turn = () => new Promise((r) => setImmediate(r));

const f = { jobId: '7', task: 'diagnostics.noop', queue: 'default', attempt: 2 };
const failure = 'Error: "quoted", a\nnewline, \\ and ü 🎬';

describe('task lines', () => {
  it('are the lines pino writes for the same fields', async () => {
    const [a, b] = [tmp(), tmp()];
    const viaPino = createLogger({ logLevel: 'info' }, a).child({ worker: 'host:1:abc' });
    const built = new TaskLines(
      createLogger({ logLevel: 'info' }, b).child({ worker: 'host:1:abc' }),
      Shortcuts.allOn(),
    );
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

  it('without the shortcut (JOBS_SHORTCUT_LOG_LINES=off) or when pino differs, go through pino: the same lines', async () => {
    const [a, b, c] = [tmp(), tmp(), tmp()];
    const off = new Shortcuts({ ...allOn, log_lines: false });
    const write = (lines: TaskLines) => {
      lines.started(f, 3);
      lines.finished(f, { retryInMs: 1500, status: 'retrying', waitMs: 3, runMs: 9, error: failure });
      lines.finished(f, { status: 'succeeded', waitMs: 1, runMs: 0 });
    };
    const child = (file: string) => createLogger({ logLevel: 'info' }, file).child({ worker: 'host:1:abc' });
    write(new TaskLines(child(a), Shortcuts.allOn()));
    write(new TaskLines(child(b), off));
    // A logger whose format the built text would not match (a mixin): the probe finds it and falls back.
    const mixed = new Shortcuts(allOn);
    write(
      new TaskLines(pino({ mixin: () => ({ extra: 1 }) }, pino.destination({ dest: c, sync: true })), mixed),
    );
    await turn();
    expect(read(b)).toEqual(read(a));
    expect(read(b).map((l) => Object.keys(l))).toEqual(read(a).map((l) => Object.keys(l)));
    expect(read(c).map((l) => [l.msg, l.extra])).toEqual([
      ['task started', 1],
      ['task finished', 1],
      ['task finished', 1],
    ]);
    expect(mixed.report().find((r) => r.name === 'log_lines')).toMatchObject({
      unavailable: 'the logger has a mixin',
      fast: 0,
      fallback: 3,
    });
  });

  it("with the logger's known mixin (tracing's span ids), still the lines pino writes", async () => {
    const [a, b] = [tmp(), tmp()];
    let ids: Record<string, string | undefined> = { trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16) };
    const mixin = () => ids;
    const logger = (file: string) =>
      pino({ mixin, base: { pid: 1 } }, pino.destination({ dest: file, sync: true })).child({ worker: 'w' });
    const shortcuts = Shortcuts.allOn();
    const built = new TaskLines(logger(b), shortcuts, mixin);
    const viaPino = logger(a);
    viaPino.info({ ...f, waitMs: 3 }, 'task started');
    built.started(f, 3);
    // Outside a span the mixin adds nothing.
    ids = {};
    viaPino.info({ ...f, status: 'succeeded', waitMs: 1, runMs: 0 }, 'task finished');
    built.finished(f, { status: 'succeeded', waitMs: 1, runMs: 0 });
    expect(read(b)).toEqual(read(a));
    expect(read(b).map((l) => Object.keys(l))).toEqual(read(a).map((l) => Object.keys(l)));
    expect(read(b)[0]).toMatchObject({ trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16) });
    expect(shortcuts.report().find((r) => r.name === 'log_lines')).toMatchObject({ fast: 2, fallback: 0 });
    // Another mixin than the one the lines know: the fallback.
    const other = Shortcuts.allOn();
    new TaskLines(logger(tmp()), other, () => ({})).started(f, 1);
    expect(other.report().find((r) => r.name === 'log_lines')).toMatchObject({
      unavailable: 'the logger has a mixin',
      fallback: 1,
    });
  });

  it('follow the logger level', async () => {
    const file = tmp();
    const lines = new TaskLines(createLogger({ logLevel: 'warn' }, file), Shortcuts.allOn());
    lines.started(f, 1);
    lines.finished(f, { status: 'succeeded', waitMs: 1, runMs: 1 });
    lines.finished(f, { status: 'failed', waitMs: 1, runMs: 1, error: 'Error: x' });
    await turn();
    expect(read(file).map((l) => [l.status, l.level])).toEqual([['failed', 40]]);
  });
});
