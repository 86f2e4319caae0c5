import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RANGE_PARTS, parseRanges, sendDownload } from '../../src/api/file-download.js';
import { registerErrorHandling } from '../../src/api/plugins/errors.js';
import { classifyDbError } from '../../src/db/db-errors.js';
import { LocalMediaStore } from '../../src/media/storage/local-store.js';

/** Splits a multipart/byteranges body into its parts (headers and bytes). */
function multipartParts(body: Buffer, boundary: string) {
  const parts: { headers: Record<string, string>; bytes: Buffer }[] = [];
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let at = body.indexOf(delimiter);
  expect(at).toBe(0);
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString() === '--') {
      expect(body.subarray(at).toString()).toBe('--\r\n');
      return parts;
    }
    const headEnd = body.indexOf('\r\n\r\n', at);
    const headers = Object.fromEntries(
      body
        .subarray(at + 2, headEnd)
        .toString()
        .split('\r\n')
        .map((l) => l.split(': ') as [string, string])
        .map(([k, v]) => [k.toLowerCase(), v]),
    );
    const next = body.indexOf(delimiter, headEnd + 4);
    parts.push({ headers, bytes: body.subarray(headEnd + 4, next) });
    at = next;
  }
}

describe('parseRanges', () => {
  it('reads single, suffix, open and several ranges; merges overlapping or adjacent ones', () => {
    expect(parseRanges('bytes=0-99', 1000)).toEqual([{ start: 0, end: 99 }]);
    expect(parseRanges('bytes=-10', 1000)).toEqual([{ start: 990, end: 999 }]);
    expect(parseRanges('bytes=-5000', 1000)).toEqual([{ start: 0, end: 999 }]);
    expect(parseRanges('bytes=990-', 1000)).toEqual([{ start: 990, end: 999 }]);
    expect(parseRanges('bytes=900-5000', 1000)).toEqual([{ start: 900, end: 999 }]);
    expect(parseRanges('bytes=500-599, 0-9', 1000)).toEqual([
      { start: 500, end: 599 },
      { start: 0, end: 9 },
    ]);
    expect(parseRanges('bytes=0-9,5-19,20-29', 1000)).toEqual([{ start: 0, end: 29 }]);
    expect(parseRanges('BYTES=0-0', 1000)).toEqual([{ start: 0, end: 0 }]);
  });
  it('drops unsatisfiable ranges ([] when none is left) and ignores what is not a bytes range set', () => {
    expect(parseRanges('bytes=1000-', 1000)).toEqual([]);
    expect(parseRanges('bytes=99999999-', 1000)).toEqual([]);
    expect(parseRanges('bytes=-0', 1000)).toEqual([]);
    expect(parseRanges('bytes=0-0', 0)).toEqual([]);
    expect(parseRanges('bytes=5000-6000,0-1', 1000)).toEqual([{ start: 0, end: 1 }]);
    for (const bad of [
      'bytes=',
      'bytes=,',
      'bytes=a-b',
      'bytes=5-1',
      'bytes=-',
      'items=0-1',
      '0-1',
      'bytes=1-2-3',
    ])
      expect(parseRanges(bad, 1000), bad).toBeUndefined();
  });
});

describe('sendDownload (a stored file over HTTP)', () => {
  let app: FastifyInstance;
  let storage: LocalMediaStore;
  let bytes: Buffer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-download-'));

  beforeAll(async () => {
    storage = new LocalMediaStore(dir);
    bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    await storage.put('f/data.bin', bytes);
    app = Fastify({ logger: false });
    registerErrorHandling(app, classifyDbError);
    app.get('/file', async (req, reply) => {
      const file = await storage.file('f/data.bin');
      if (!file) throw new Error('test file missing');
      return sendDownload(req, reply, {
        file,
        contentType: 'application/octet-stream',
        fileName: 'data.bin',
      });
    });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = (headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/file', headers });

  it('answers the whole file with ETag, Last-Modified and Accept-Ranges', async () => {
    const res = await get();
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload).toEqual(bytes);
    expect(res.headers['content-length']).toBe('1000');
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    const mtime = fs.statSync(path.join(dir, 'f/data.bin')).mtime;
    expect(res.headers['last-modified']).toBe(mtime.toUTCString());
    const head = await app.inject({ method: 'HEAD', url: '/file' });
    expect(head.statusCode).toBe(200);
    expect(head.headers.etag).toBe(res.headers.etag);
  });

  it('answers 304 to If-None-Match naming the file (weak comparison, lists, *) and 200 otherwise', async () => {
    const etag = (await get()).headers.etag as string;
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const res = await get({ 'if-none-match': inm });
      expect(res.statusCode, inm).toBe(304);
      expect(res.rawPayload.length).toBe(0);
      expect(res.headers.etag).toBe(etag);
    }
    expect((await get({ 'if-none-match': '"other"' })).statusCode).toBe(200);
    // If-None-Match wins over If-Modified-Since.
    const later = new Date(Date.now() + 60_000).toUTCString();
    expect((await get({ 'if-none-match': '"other"', 'if-modified-since': later })).statusCode).toBe(200);
  });

  it('answers 304 to If-Modified-Since at or after the modification time', async () => {
    const lastModified = (await get()).headers['last-modified'] as string;
    expect((await get({ 'if-modified-since': lastModified })).statusCode).toBe(304);
    const before = new Date(Date.parse(lastModified) - 1000).toUTCString();
    expect((await get({ 'if-modified-since': before })).statusCode).toBe(200);
    expect((await get({ 'if-modified-since': 'not a date' })).statusCode).toBe(200);
  });

  it('serves one range as 206 and refuses an unsatisfiable one with 416 and the size', async () => {
    const part = await get({ range: 'bytes=10-19' });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe('bytes 10-19/1000');
    expect(part.rawPayload).toEqual(bytes.subarray(10, 20));
    const tail = await get({ range: 'bytes=-7' });
    expect(tail.rawPayload).toEqual(bytes.subarray(-7));
    const beyond = await get({ range: 'bytes=1000-' });
    expect(beyond.statusCode).toBe(416);
    expect(beyond.headers['content-range']).toBe('bytes */1000');
    expect(beyond.json().error.code).toBe('RANGE_NOT_SATISFIABLE');
    // Not a bytes range set: ignored, the whole file.
    const odd = await get({ range: 'bytes=x-y' });
    expect(odd.statusCode).toBe(200);
    expect(odd.rawPayload).toEqual(bytes);
  });

  it('serves several ranges as multipart/byteranges, in the order asked', async () => {
    const res = await get({ range: 'bytes=900-909, 0-4, -3' });
    expect(res.statusCode).toBe(206);
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(
      res.headers['content-type'] as string,
    )?.[1];
    expect(boundary).toBeDefined();
    expect(Number(res.headers['content-length'])).toBe(res.rawPayload.length);
    const parts = multipartParts(res.rawPayload, boundary as string);
    expect(parts.map((p) => p.headers['content-range'])).toEqual([
      'bytes 900-909/1000',
      'bytes 0-4/1000',
      'bytes 997-999/1000',
    ]);
    expect(parts.every((p) => p.headers['content-type'] === 'application/octet-stream')).toBe(true);
    expect(parts.map((p) => p.bytes)).toEqual([
      bytes.subarray(900, 910),
      bytes.subarray(0, 5),
      bytes.subarray(997),
    ]);
  });

  it('merges overlapping ranges, and sends the whole file for too many parts', async () => {
    const merged = await get({ range: 'bytes=0-9,5-14' });
    expect(merged.statusCode).toBe(206);
    expect(merged.headers['content-range']).toBe('bytes 0-14/1000');
    const many = Array.from({ length: MAX_RANGE_PARTS + 1 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',');
    const whole = await get({ range: `bytes=${many}` });
    expect(whole.statusCode).toBe(200);
    expect(whole.rawPayload).toEqual(bytes);
  });

  it('honours If-Range: the range while it names this file, the whole file once it does not', async () => {
    const full = await get();
    const etag = full.headers.etag as string;
    const lastModified = full.headers['last-modified'] as string;
    const ranged = (ifRange: string) => get({ range: 'bytes=0-9', 'if-range': ifRange });
    expect((await ranged(etag)).statusCode).toBe(206);
    expect((await ranged(lastModified)).statusCode).toBe(206);
    // A weak validator never matches If-Range; nor does another tag or date.
    for (const stale of [`W/${etag}`, '"other"', new Date(0).toUTCString(), 'garbage']) {
      const res = await ranged(stale);
      expect(res.statusCode, stale).toBe(200);
      expect(res.rawPayload).toEqual(bytes);
    }
  });

  it('gives a replaced file a new ETag', async () => {
    const before = (await get()).headers.etag;
    await storage.put('f/data.bin', Buffer.concat([bytes, Buffer.from('more')]));
    const after = await get({ 'if-none-match': before as string });
    expect(after.statusCode).toBe(200);
    expect(after.headers.etag).not.toBe(before);
    expect(after.rawPayload.length).toBe(1004);
    await storage.put('f/data.bin', bytes);
  });
});
