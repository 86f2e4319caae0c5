/**
 * The MediaStore contract, run against the local directory store and the S3
 * store (an S3-compatible server started here, or a real endpoint from
 * TEST_MEDIA_STORAGE_URL: see test/support/s3.ts).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMediaConfig } from '../../src/config/media.js';
import { createMediaStore } from '../../src/media/storage/create-store.js';
import { type MediaStore, StorageKeyError } from '../../src/media/storage/media-store.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { tempDir } from './media-fixtures.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function bytes(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

let s3: S3TestTarget;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

const stores: [string, () => Record<string, string>][] = [
  ['local', () => ({ MEDIA_DIR: tempDir() })],
  ['s3', () => ({ ...s3.env, MEDIA_S3_PART_SIZE_MB: '5' })],
];

describe.each(stores)('media store (%s)', (kind, env) => {
  let store: MediaStore;
  let vars: Record<string, string>;
  beforeAll(() => {
    vars = env();
    store = createMediaStore(loadMediaConfig(vars).storage);
    expect(store.kind).toBe(kind);
  });
  afterAll(() => store?.close());

  it('puts bytes and reads them back whole, by range, and as a local file', async () => {
    const data = Buffer.from('0123456789abcdefghij');
    await store.put('t/a.bin', data, { contentType: 'application/octet-stream' });
    expect(await store.read('t/a.bin')).toEqual(data);
    const f = await store.file('t/a.bin');
    expect(f?.size).toBe(20);
    expect(f?.etag).toMatch(/^".+"$/);
    expect(await bytes(f!.open({ start: 5, end: 9 }))).toEqual(Buffer.from('56789'));
    expect(await bytes(f!.open())).toEqual(data);
    const copy = await store.localCopy('t/a.bin', tempDir());
    expect(fs.readFileSync(copy)).toEqual(data);
    expect(store.locate('t/a.bin')).toContain('t/a.bin');
  });

  it('an absent key is undefined, and deleting it is not an error', async () => {
    expect(await store.file('t/none.bin')).toBeUndefined();
    expect(await store.read('t/none.bin')).toBeUndefined();
    await expect(store.localCopy('t/none.bin', tempDir())).rejects.toThrow();
    await store.delete('t/none.bin');
    await store.put('t/gone.bin', 'x');
    await store.delete('t/gone.bin');
    expect(await store.file('t/gone.bin')).toBeUndefined();
  });

  it('refuses keys that would leave the store', async () => {
    for (const k of ['../x', 'a/../../x', '/etc/passwd', '', 'a//b'])
      await expect(store.put(k, 'x')).rejects.toBeInstanceOf(StorageKeyError);
  });

  it('a large file goes up whole (multipart on S3) and streams back byte for byte', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 123);
    const src = path.join(tempDir(), 'big.bin');
    fs.writeFileSync(src, data);
    await store.putFile('t/big.bin', src);
    const f = await store.file('t/big.bin');
    expect(f?.size).toBe(data.length);
    expect(sha(await bytes(f!.open()))).toBe(sha(data));
    const start = 6 * 1024 * 1024 - 10;
    expect(await bytes(f!.open({ start, end: start + 19 }))).toEqual(data.subarray(start, start + 20));
  });

  it('an upload whose source fails half way leaves no object', async () => {
    let n = 0;
    const failing = new Readable({
      read() {
        n++;
        if (n <= 12) this.push(Buffer.alloc(1024 * 1024, 1));
        else this.destroy(new Error('source broke'));
      },
    });
    await expect(store.put('t/half.bin', failing)).rejects.toThrow();
    expect(await store.file('t/half.bin')).toBeUndefined();
  });

  /** Starts the upload child, waits for `uploading` (and `afterMs` more), SIGKILLs it; its stdout. */
  async function killMidUpload(args: string[], afterMs = 0): Promise<string> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'upload-and-hang.ts'), ...args],
      { env: { ...process.env, ...vars }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('uploading')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code} before uploading: ${err}`)));
    });
    await new Promise((r) => setTimeout(r, afterMs));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    return out;
  }

  it('a process killed mid-upload leaves no object under the key', async () => {
    const out = await killMidUpload(['t/killed.bin']);
    expect(out).not.toContain('finished');
    expect(await store.file('t/killed.bin')).toBeUndefined();
    if (kind === 'local') {
      // Nothing but the (unnamed) temp file may remain, and never under the key.
      expect(fs.existsSync(path.join(vars.MEDIA_DIR ?? '', 't', 'killed.bin'))).toBe(false);
    }
  });

  it.skipIf(kind !== 's3')('a process killed while it uploads a file in parts leaves no object', async () => {
    // 100 MB in 5 MB parts: the kill lands between the first parts and the completion.
    const out = await killMidUpload(['t/killed-file.bin', 'file'], 300);
    expect(out, 'the upload finished before the kill: nothing was tested').not.toContain('finished');
    expect(await store.file('t/killed-file.bin')).toBeUndefined();
  });

  it('presigned download URLs: on S3 when configured (fetchable), never for the local store', async () => {
    await store.put('t/p.txt', 'presigned body');
    const opts = { filename: 'p.txt', contentType: 'text/plain' };
    expect(await store.presignedUrl('t/p.txt', opts)).toBeUndefined();
    if (kind !== 's3') return;
    const signing = createMediaStore(loadMediaConfig({ ...vars, MEDIA_PRESIGN_TTL_S: '60' }).storage);
    try {
      const url = await signing.presignedUrl('t/p.txt', opts);
      expect(url).toMatch(/X-Amz-Expires=60/);
      const res = await fetch(url ?? '');
      expect(res.status).toBe(200);
      expect(await text(res.body as unknown as Readable)).toBe('presigned body');
    } finally {
      signing.close();
    }
  });
});
