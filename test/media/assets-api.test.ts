/**
 * Uploaded assets through the API, over both media stores (a local directory
 * on SQLite; S3 — an S3-compatible server started here, see test/support/s3.ts —
 * on PostgreSQL when it is available): probing by content, the refusals and
 * what they leave behind (nothing), content addressing, downloads, deletion
 * while a render uses the asset, and the logo/music choices.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createSystem, type System } from '../../src/main/system.js';
import { mediaKeys } from '../../src/media/storage/media-store.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { makeClip, makeImage, makeTone } from './asset-fixtures.js';
import { seedContent, silentLogger, tempDir } from './media-fixtures.js';

const BOUNDARY = 'ov-test-boundary-7f3a';
/** A multipart body with one `file` part, its name and declared type chosen by the test (and ignored by the server). */
function multipartBody(bytes: Buffer, filename: string, type: string): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\ncontent-type: ${type}\r\n\r\n`,
    ),
    bytes,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface AssetView {
  id: number;
  kind: string;
  mime: string;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  has_alpha: boolean;
  size_bytes: number;
  sha256: string;
}

let s3: S3TestTarget;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

const setups: ['local' | 's3'][] = [['local'], ['s3']];

describe.each(setups)('assets API (%s storage)', (storageKind) => {
  let system: System;
  let app: FastifyInstance;
  let auth: { authorization: string };
  let viewer: { authorization: string };
  let clientId: number;
  let otherClientId: number;
  const dataDir = tempDir('ov-assets-api-');
  const scratch = path.join(dataDir, 'scratch');

  beforeAll(async () => {
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'omnivibe.db')}`,
      LOG_LEVEL: 'silent',
      ASSET_MAX_MB: '1',
      ASSET_MAX_MEGAPIXELS: '1',
      ASSET_MAX_DURATION_S: '2',
      ...(storageKind === 's3' ? s3.env : {}),
    };
    if (storageKind === 's3' && dbBackends().includes('postgres'))
      env.DATABASE_URL = ((await freshDatabaseConfig('postgres')) as { url: string }).url;
    system = await createSystem(loadConfig(env), silentLogger);
    expect(system.media.storage.kind).toBe(storageKind);
    app = await buildApp(appDepsFrom(system, { logger: false }));
    auth = { authorization: `Bearer ${(await system.apiKeys.create('assets', 'editor')).key}` };
    viewer = { authorization: `Bearer ${(await system.apiKeys.create('assets-viewer', 'viewer')).key}` };
    clientId = (await seedContent(system.database.db, ['a'])).clientId;
    otherClientId = (await seedContent(system.database.db, ['b'])).clientId;
  });
  afterAll(async () => {
    await app?.close();
    await system?.close();
  });

  const upload = (
    file: string | Buffer,
    opts: { name?: string; type?: string; kind?: string; client?: number; headers?: object } = {},
  ) =>
    app.inject({
      method: 'POST',
      url: `/api/v1/clients/${opts.client ?? clientId}/assets${opts.kind ? `?kind=${opts.kind}` : ''}`,
      headers: { ...auth, ...opts.headers, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      payload: multipartBody(
        Buffer.isBuffer(file) ? file : fs.readFileSync(file),
        opts.name ?? 'upload.bin',
        opts.type ?? 'application/octet-stream',
      ),
    });
  const get = (url: string) => app.inject({ method: 'GET', url: `/api/v1${url}`, headers: auth });
  const rowCount = async () =>
    Number(
      (
        await system.database.db
          .selectFrom('assets')
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  /** Nothing left of a refused upload: no row, no stored object, no scratch file. */
  async function nothingLeft(bytes: Buffer, rowsBefore: number) {
    expect(await rowCount()).toBe(rowsBefore);
    expect(await system.media.storage.file(mediaKeys.asset(sha(bytes)))).toBeUndefined();
    const left = fs.existsSync(scratch) ? fs.readdirSync(scratch).filter((f) => f.startsWith('upload-')) : [];
    expect(left).toEqual([]);
  }

  it('decides the type from the content, whatever the name and declared MIME say', async () => {
    const cases: [string, Partial<AssetView>][] = [
      [
        makeImage({ ext: 'png' }),
        { kind: 'image', mime: 'image/png', width: 64, height: 48, has_alpha: false },
      ],
      [makeImage({ ext: 'jpg' }), { kind: 'image', mime: 'image/jpeg', width: 64, height: 48 }],
      [makeImage({ ext: 'webp' }), { kind: 'image', mime: 'image/webp', width: 64, height: 48 }],
      [makeImage({ alpha: true }), { kind: 'image', mime: 'image/png', has_alpha: true }],
      [makeClip({ ext: 'mp4' }), { kind: 'clip', mime: 'video/mp4', width: 64, height: 48 }],
      [makeClip({ ext: 'mov' }), { kind: 'clip', mime: 'video/quicktime' }],
      [makeClip({ ext: 'webm' }), { kind: 'clip', mime: 'video/webm' }],
      [makeTone({ ext: 'mp3' }), { kind: 'audio', mime: 'audio/mpeg', width: null }],
      [makeTone({ ext: 'wav' }), { kind: 'audio', mime: 'audio/wav' }],
      [makeTone({ ext: 'm4a' }), { kind: 'audio', mime: 'audio/mp4' }],
    ];
    for (const [file, expected] of cases) {
      // Every file claims to be a JPEG called holiday.jpg: neither is believed.
      const res = await upload(file, { name: 'holiday.jpg', type: 'image/jpeg' });
      expect(res.statusCode, `${file}: ${res.body}`).toBe(201);
      const a = res.json<AssetView>();
      expect(a).toMatchObject({
        ...expected,
        size_bytes: fs.statSync(file).size,
        sha256: sha(fs.readFileSync(file)),
      });
      if (a.kind !== 'image') expect(a.duration_s).toBeGreaterThan(0.9);
    }
  });

  it('stores identical content once: the same client gets its asset back, another client shares the object', async () => {
    const file = makeImage({ color: 'blue' });
    const first = await upload(file);
    expect(first.statusCode).toBe(201);
    const again = await upload(file, { name: 'copy.png' });
    expect(again.statusCode).toBe(200);
    expect(again.json<AssetView>().id).toBe(first.json<AssetView>().id);
    const other = await upload(file, { client: otherClientId });
    expect(other.statusCode).toBe(201);
    const a = first.json<AssetView>();
    const b = other.json<AssetView>();
    expect(b.id).not.toBe(a.id);
    const rows = await system.database.db
      .selectFrom('assets')
      .select('storage_key')
      .where('sha256', '=', a.sha256)
      .execute();
    expect(new Set(rows.map((r) => r.storage_key)).size).toBe(1);
    // Deleting one client's row keeps the object the other still uses; deleting the last removes it.
    expect(
      (await app.inject({ method: 'DELETE', url: `/api/v1/assets/${a.id}`, headers: auth })).statusCode,
    ).toBe(204);
    expect(await system.media.storage.file(mediaKeys.asset(a.sha256))).toBeDefined();
    expect((await get(`/assets/${b.id}/download`)).statusCode).toBe(200);
    expect(
      (await app.inject({ method: 'DELETE', url: `/api/v1/assets/${b.id}`, headers: auth })).statusCode,
    ).toBe(204);
    expect(await system.media.storage.file(mediaKeys.asset(a.sha256))).toBeUndefined();
    expect((await get(`/assets/${b.id}`)).statusCode).toBe(404);
  });

  it('lists, gets and downloads (Range, ETag)', async () => {
    const file = makeTone({ ext: 'wav', hz: 300 });
    const bytes = fs.readFileSync(file);
    const a = (await upload(file)).json<AssetView>();
    const list = await get(`/clients/${clientId}/assets?kind=audio`);
    expect(list.json<{ items: AssetView[] }>().items.map((i) => i.id)).toContain(a.id);
    expect(list.json<{ items: AssetView[] }>().items.every((i) => i.kind === 'audio')).toBe(true);
    expect((await get(`/assets/${a.id}`)).json()).toMatchObject({ id: a.id, mime: 'audio/wav' });
    const whole = await get(`/assets/${a.id}/download`);
    expect(whole.statusCode).toBe(200);
    expect(whole.headers['content-type']).toBe('audio/wav');
    expect(whole.rawPayload.equals(bytes)).toBe(true);
    const part = await app.inject({
      method: 'GET',
      url: `/api/v1/assets/${a.id}/download`,
      headers: { ...auth, range: 'bytes=10-19' },
    });
    expect(part.statusCode).toBe(206);
    expect(part.rawPayload.equals(bytes.subarray(10, 20))).toBe(true);
    const etag = String(whole.headers.etag);
    const cached = await app.inject({
      method: 'GET',
      url: `/api/v1/assets/${a.id}/download`,
      headers: { ...auth, 'if-none-match': etag },
    });
    expect(cached.statusCode).toBe(304);
    expect((await get(`/clients/999999/assets`)).statusCode).toBe(404);
  });

  it('refuses with a reason and leaves nothing behind', async () => {
    const text = Buffer.from('just some text, named like a picture\n');
    const bigPng = fs.readFileSync(makeImage({ w: 1200, h: 1000 })); // 1.2 MP over the 1 MP limit
    const longClip = fs.readFileSync(makeClip({ seconds: 3 })); // over the 2 s limit
    const longTone = fs.readFileSync(makeTone({ seconds: 3, ext: 'mp3' })); // music over it too
    const png = fs.readFileSync(makeImage({ color: 'green' }));
    const broken = Buffer.concat([png.subarray(0, 33), Buffer.alloc(200, 0xff)]);
    const tooBig = Buffer.concat([Buffer.from(png), Buffer.alloc(1024 * 1024 + 10, 1)]);
    const cases: [Buffer, { kind?: string; name?: string }, number, string][] = [
      [text, { name: 'photo.png' }, 415, 'unknown_type'],
      [bigPng, {}, 422, 'too_many_pixels'],
      [longClip, {}, 422, 'too_long'],
      [longTone, {}, 422, 'too_long'],
      [png, { kind: 'audio' }, 422, 'mismatched_type'],
      [png, { kind: 'logo' }, 422, 'mismatched_type'], // a PNG without alpha is no logo
      [broken, {}, 422, 'unreadable'],
      [tooBig, {}, 413, 'too_large'],
    ];
    for (const [bytes, opts, status, reason] of cases) {
      const before = await rowCount();
      const res = await upload(bytes, opts);
      expect(res.statusCode, `${reason}: ${res.body}`).toBe(status);
      expect(res.json()).toMatchObject({ error: { details: { reason } } });
      await nothingLeft(bytes, before);
    }
    const json = await app.inject({
      method: 'POST',
      url: `/api/v1/clients/${clientId}/assets`,
      headers: auth,
      payload: { file: 'x' },
    });
    expect(json.statusCode).toBe(415);
    const asViewer = await upload(png, { headers: viewer });
    expect(asViewer.statusCode).toBe(403);
  });

  it('an upload cut short leaves no row, no object and no scratch file', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const bytes = fs.readFileSync(makeClip({ seconds: 1, w: 320, h: 240 }));
    const body = multipartBody(bytes, 'clip.mp4', 'video/mp4');
    const before = await rowCount();
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/api/v1/clients/${clientId}/assets`,
        headers: {
          ...auth,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
          'content-length': body.length,
        },
      });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      req.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => req.destroy(), 200));
    });
    // The server notices the closed connection, fails the stream and cleans up.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const left = fs.existsSync(scratch)
        ? fs.readdirSync(scratch).filter((f) => f.startsWith('upload-'))
        : [];
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await nothingLeft(bytes, before);
  });

  it('deleting an asset a render in progress uses is 409; once the render finished it goes', async () => {
    const a = (await upload(makeImage({ color: 'yellow' }))).json<AssetView>();
    const { contentId } = await seedContent(system.database.db, ['x']);
    const render = await system.media.repo.createRender({
      content_id: contentId,
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    await system.media.assetsRepo.recordRenderAssets(render.id, [a.id]);
    const del = () => app.inject({ method: 'DELETE', url: `/api/v1/assets/${a.id}`, headers: auth });
    const busy = await del();
    expect(busy.statusCode).toBe(409);
    expect(busy.json()).toMatchObject({ error: { code: 'ASSET_IN_USE', details: { renders: [render.id] } } });
    await system.media.repo.updateRender(render.id, { status: 'running' });
    expect((await del()).statusCode).toBe(409);
    await system.media.repo.updateRender(render.id, { status: 'succeeded' });
    expect((await del()).statusCode).toBe(204);
  });

  it('a render request records the assets it reads: background, logo and music are 409 until it ends', async () => {
    const seeded = await seedContent(system.database.db, [{ text: '장면', duration_s: 1 }]);
    const client = seeded.clientId;
    const picture = (await upload(makeImage({ color: 'orange' }), { client })).json<AssetView>();
    const logo = (
      await upload(makeImage({ alpha: true, color: 'navy' }), { kind: 'logo', client })
    ).json<AssetView>();
    const music = (await upload(makeTone({ ext: 'wav', hz: 180 }), { client })).json<AssetView>();
    const put = (url: string, payload: object) =>
      app.inject({ method: 'PUT', url: `/api/v1${url}`, headers: auth, payload });
    const block = await system.database.db
      .selectFrom('script_blocks')
      .select('id')
      .where('content_id', '=', seeded.contentId)
      .executeTakeFirstOrThrow();
    expect(
      (
        await app.inject({
          method: 'PATCH',
          url: `/api/v1/contents/${seeded.contentId}/script/blocks/${block.id}`,
          headers: auth,
          payload: { background: `asset:${picture.id}` },
        })
      ).statusCode,
    ).toBe(200);
    expect((await put(`/clients/${client}/logo`, { asset_id: logo.id })).statusCode).toBe(204);
    expect((await put(`/campaigns/${seeded.campaignId}/music`, { asset_id: music.id })).statusCode).toBe(204);
    // Queued (no worker runs here), so it is in progress until its row ends.
    const requested = await app.inject({
      method: 'POST',
      url: `/api/v1/contents/${seeded.contentId}/renders`,
      headers: auth,
      payload: { silent: true, quality: 'low' },
    });
    expect(requested.statusCode, requested.body).toBe(202);
    const renderId = requested.json<{ render_id: number }>().render_id;
    const del = (id: number) => app.inject({ method: 'DELETE', url: `/api/v1/assets/${id}`, headers: auth });
    for (const a of [picture, logo, music]) {
      const busy = await del(a.id);
      expect(busy.statusCode, `${a.kind}: ${busy.body}`).toBe(409);
      expect(busy.json()).toMatchObject({
        error: { code: 'ASSET_IN_USE', details: { renders: [renderId] } },
      });
    }
    await system.media.repo.updateRender(renderId, { status: 'failed', error: 'ended by the test' });
    for (const a of [picture, logo, music]) expect((await del(a.id)).statusCode).toBe(204);
  });

  it('a client chooses a logo (PNG with alpha), a campaign or content its music (audio)', async () => {
    const logo = (
      await upload(makeImage({ alpha: true, color: 'white' }), { kind: 'logo' })
    ).json<AssetView>();
    expect(logo.kind).toBe('logo');
    const music = (await upload(makeTone({ ext: 'mp3', hz: 220 }))).json<AssetView>();
    const seeded = await seedContent(system.database.db, ['y']);
    const foreignLogo = (
      await upload(makeImage({ alpha: true, color: 'pink' }), { client: seeded.clientId })
    ).json<AssetView>();
    const put = (url: string, asset_id: number | null) =>
      app.inject({ method: 'PUT', url: `/api/v1${url}`, headers: auth, payload: { asset_id } });
    expect((await put(`/clients/${clientId}/logo`, logo.id)).statusCode).toBe(204);
    expect((await system.media.assetsRepo.choice('client', clientId, 'logo'))?.id).toBe(logo.id);
    expect((await put(`/clients/${clientId}/logo`, music.id)).statusCode).toBe(422);
    expect((await put(`/clients/${clientId}/logo`, foreignLogo.id)).statusCode).toBe(422);
    expect((await put(`/campaigns/${seeded.campaignId}/music`, music.id)).statusCode).toBe(422); // another client's campaign
    expect((await put(`/contents/999999/music`, music.id)).statusCode).toBe(404);
    const mine = await seedContent(system.database.db, ['z']);
    // seedContent makes a new client each time: give this one the music by uploading it there.
    const theirMusic = (
      await upload(makeTone({ ext: 'mp3', hz: 220 }), { client: mine.clientId })
    ).json<AssetView>();
    expect((await put(`/campaigns/${mine.campaignId}/music`, theirMusic.id)).statusCode).toBe(204);
    expect((await put(`/contents/${mine.contentId}/music`, theirMusic.id)).statusCode).toBe(204);
    expect((await put(`/contents/${mine.contentId}/music`, null)).statusCode).toBe(204);
    expect(await system.media.assetsRepo.choice('content', mine.contentId, 'music')).toBeUndefined();
  });
});

describe('downloads through presigned URLs (S3 with MEDIA_PRESIGN_TTL_S)', () => {
  let system: System;
  let app: FastifyInstance;
  let auth: { authorization: string };
  const dataDir = tempDir('ov-assets-presign-');

  beforeAll(async () => {
    system = await createSystem(
      loadConfig({
        DATA_DIR: dataDir,
        DATABASE_URL: `sqlite:${path.join(dataDir, 'omnivibe.db')}`,
        LOG_LEVEL: 'silent',
        MEDIA_PRESIGN_TTL_S: '60',
        ...s3.env,
      }),
      silentLogger,
    );
    expect(system.media.storage.kind).toBe('s3');
    app = await buildApp(appDepsFrom(system, { logger: false }));
    auth = { authorization: `Bearer ${(await system.apiKeys.create('presign', 'editor')).key}` };
  });
  afterAll(async () => {
    await app?.close();
    await system?.close();
  });

  /** The API's answer is a 302 to a short-lived URL that serves exactly these bytes, whole and by range. */
  async function redirectsTo(url: string, bytes: Buffer, contentType: string) {
    const res = await app.inject({ method: 'GET', url, headers: auth });
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers['cache-control']).toBe('no-store');
    const location = String(res.headers.location);
    expect(location).toMatch(/[?&]X-Amz-Expires=60(&|$)/);
    const whole = await fetch(location);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe(contentType);
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
    const part = await fetch(location, { headers: { range: 'bytes=2-9' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(2, 10))).toBe(true);
  }

  it('an asset download answers 302 to the object', async () => {
    const bytes = fs.readFileSync(makeImage({ color: 'purple' }));
    const { clientId } = await seedContent(system.database.db, ['a']);
    const up = await app.inject({
      method: 'POST',
      url: `/api/v1/clients/${clientId}/assets`,
      headers: { ...auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      payload: multipartBody(bytes, 'p.png', 'image/png'),
    });
    expect(up.statusCode).toBe(201);
    await redirectsTo(`/api/v1/assets/${up.json<AssetView>().id}/download`, bytes, 'image/png');
  });

  it('render video and caption downloads answer 302 to their objects', async () => {
    const { contentId } = await seedContent(system.database.db, ['a']);
    const row = await system.media.repo.createRender({
      content_id: contentId,
      preset: 'tiktok',
      width: 1080,
      height: 1920,
      fps: 30,
    });
    const video = fs.readFileSync(makeClip({ seconds: 1 }));
    const srt = Buffer.from('1\n00:00:00,000 --> 00:00:01,000\n봄\n');
    await system.media.storage.put(`renders/${row.id}/video.mp4`, video, { contentType: 'video/mp4' });
    await system.media.storage.put(`renders/${row.id}/captions.srt`, srt, {
      contentType: 'application/x-subrip',
    });
    await system.media.repo.updateRender(row.id, {
      status: 'succeeded',
      output_path: `renders/${row.id}/video.mp4`,
      captions_srt_path: `renders/${row.id}/captions.srt`,
    });
    await redirectsTo(`/api/v1/renders/${row.id}/download`, video, 'video/mp4');
    await redirectsTo(`/api/v1/renders/${row.id}/captions.srt`, srt, 'application/x-subrip');
  });
});
