import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { AssetKind } from '../../db/types.js';
import { AppError, type ErrorCode, notFound } from '../../errors.js';
import type { MediaConfig } from '../../config/media.js';
import { type FileDownload, type MediaStore, mediaKeys } from '../storage/media-store.js';
import { AssetProbeError, probeAsset } from './asset-probe.js';
import type { Asset, AssetsRepo, ChoiceOwner, ChoiceRole, NewAsset } from './assets.repo.js';

/** Why an upload was refused (error.details.reason). */
export type AssetRefusal =
  | 'unknown_type'
  | 'mismatched_type'
  | 'too_large'
  | 'too_many_pixels'
  | 'too_long'
  | 'unreadable'
  | 'upload_incomplete'
  | 'probe_unavailable';

const refuse = (
  code: ErrorCode,
  reason: AssetRefusal,
  message: string,
  details: Record<string, unknown> = {},
) => new AppError(code, message, { reason, ...details });

export interface AssetUpload {
  /** The file part's bytes, as they arrive. */
  stream: Readable;
  /** The client's file name: kept for display, never used to decide anything. */
  filename: string | undefined;
  /** What the uploader says it is; refused when the content disagrees. `logo` needs a PNG with alpha. */
  declaredKind: AssetKind | undefined;
  /** True when the multipart layer cut the file at its size limit. */
  truncated(): boolean;
}

export interface AssetServiceDeps {
  repo: AssetsRepo;
  storage: MediaStore;
  /** Uploads are written here while they are hashed and probed. */
  scratchDir: string;
  /** ffprobe, or undefined with the reason in ffprobeError (uploads are then refused). */
  ffprobePath: string | undefined;
  ffprobeError?: string;
  limits: MediaConfig['assets'];
  logger: Logger;
}

/** Counts bytes as they pass and fails the stream past the limit (a second guard beside the multipart limit). */
function byteLimit(max: number, onCount: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      onCount(n);
      if (n > max)
        done(refuse('PAYLOAD_TOO_LARGE', 'too_large', `the file is over the ${max}-byte limit`, { max }));
      else done(null, chunk);
    },
  });
}

/** How many times an upload stores its object before giving up when deletes of the same bytes keep removing it. */
const MAX_PUTS = 3;

/**
 * Uploaded media per client. An upload is streamed to a scratch file while
 * it is hashed (never held in memory), probed by content with ffprobe,
 * checked against the limits, then stored once per sha256 in media storage
 * (a second upload of the same bytes by the same client returns the existing
 * asset; by another client, a new row over the same object). A refused or
 * failed upload leaves no row and no object: the scratch file is always
 * removed, and the row is written only after the object is stored.
 *
 * Rows and objects of one sha256 (several rows, one object) stay consistent
 * under concurrent uploads and deletes, on every process, by this invariant:
 *
 *   whenever a transaction commits, every sha256 that has a row has its
 *   object stored.
 *
 * It holds because both changes that could break it are made under the
 * sha256's lock (AssetsRepo.withShaLock: a PostgreSQL advisory lock, or a
 * lease row on SQLite), each after a check under the same lock:
 * - a row is inserted only after the object was seen stored (`store`);
 * - an object is deleted only after no row was left (`delete`).
 * The put itself, which can be large, runs outside the lock. A put is only
 * trusted once the next locked step sees its object; a delete of the last
 * other row in between removes it, and the upload puts it again. Puts and
 * deletes are all-or-nothing in both stores (a rename; a single PUT or a
 * completed multipart upload on S3, whose reads after writes and deletes are
 * consistent), so "seen stored" means every byte is there. Left open: on
 * PostgreSQL, a commit that fails after the object was deleted (a database
 * outage at that instant) leaves rows without it; on SQLite, a hold longer
 * than the lease (a store call hung for a minute) lets another process in.
 * Uploading the bytes again stores them again, since `store` checks the
 * object even when the row exists.
 */
export class AssetService {
  constructor(private readonly deps: AssetServiceDeps) {}

  async upload(clientId: number, input: AssetUpload): Promise<{ asset: Asset; created: boolean }> {
    const { repo, limits } = this.deps;
    if (!(await repo.clientExists(clientId))) {
      input.stream.resume();
      throw notFound('CLIENT_NOT_FOUND', 'client', clientId);
    }
    await fs.mkdir(this.deps.scratchDir, { recursive: true });
    // No extension: ffprobe must decide from the bytes, not from a name.
    const tmp = path.join(this.deps.scratchDir, `upload-${randomUUID()}`);
    try {
      const hash = createHash('sha256');
      let size = 0;
      try {
        await pipeline(
          input.stream,
          byteLimit(limits.maxBytes, (n) => (size = n)),
          new Transform({
            transform(chunk: Buffer, _enc, done) {
              hash.update(chunk);
              done(null, chunk);
            },
          }),
          createWriteStream(tmp),
        );
      } catch (err) {
        if (err instanceof AppError) throw err;
        throw refuse(
          'VALIDATION_FAILED',
          'upload_incomplete',
          `the upload was cut short after ${size} bytes`,
          {
            received: size,
          },
        );
      }
      if (input.truncated())
        throw refuse('PAYLOAD_TOO_LARGE', 'too_large', `the file is over the ${limits.maxBytes}-byte limit`, {
          max: limits.maxBytes,
        });
      if (size === 0) throw refuse('UNPROCESSABLE', 'unreadable', 'the file is empty');
      const sha256 = hash.digest('hex');
      const probed = await this.probe(tmp);
      const kind = this.kindOf(probed, input.declaredKind);
      if (probed.width && probed.height && probed.width * probed.height > limits.maxPixels)
        throw refuse(
          'UNPROCESSABLE',
          'too_many_pixels',
          `the image is ${probed.width}×${probed.height}, over the ${limits.maxPixels}-pixel limit`,
          { width: probed.width, height: probed.height, max_pixels: limits.maxPixels },
        );
      if (probed.duration_s !== null && probed.duration_s > limits.maxDurationS)
        throw refuse(
          'UNPROCESSABLE',
          'too_long',
          `the ${kind} lasts ${probed.duration_s} s, over the ${limits.maxDurationS} s limit`,
          { duration_s: probed.duration_s, max_s: limits.maxDurationS },
        );
      return await this.store(tmp, {
        client_id: clientId,
        kind,
        mime: probed.mime,
        width: probed.width,
        height: probed.height,
        duration_s: probed.duration_s,
        has_alpha: probed.has_alpha ? 1 : 0,
        size_bytes: size,
        sha256,
        storage_key: mediaKeys.asset(sha256),
        original_name: input.filename?.slice(0, 255) ?? null,
      });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Stores the scratch file's bytes (unless the object is there) and returns the client's row for them. */
  private async store(file: string, row: NewAsset): Promise<{ asset: Asset; created: boolean }> {
    const { repo, storage } = this.deps;
    const { client_id: clientId, sha256, storage_key: key } = row;
    let puts = 0;
    for (;;) {
      let found: { asset: Asset; created: boolean } | undefined;
      try {
        found = await repo.withShaLock(sha256, async (locked) => {
          if (!(await storage.file(key))) return undefined;
          const existing = await locked.bySha(clientId, sha256);
          return existing
            ? { asset: existing, created: false }
            : { asset: await locked.insert(row), created: true };
        });
      } catch (err) {
        if (puts > 0) await this.dropIfUnused(sha256, key);
        throw err;
      }
      if (found) return found;
      if (puts === MAX_PUTS)
        throw new AppError(
          'CONFLICT',
          `the same content was deleted while this upload stored it, ${MAX_PUTS} times; upload it again`,
          { reason: 'deleted_while_stored' },
        );
      await storage.putFile(key, file, { contentType: row.mime });
      puts++;
    }
  }

  /** After a failed upload that stored its object: removes the object unless a row uses it (logged if that fails). */
  private async dropIfUnused(sha256: string, key: string): Promise<void> {
    try {
      await this.deps.repo.withShaLock(sha256, async (locked) => {
        if ((await locked.countSha(sha256)) === 0) await this.deps.storage.delete(key);
      });
    } catch (err) {
      this.deps.logger.error({ err, key }, 'a failed upload left its stored object behind');
    }
  }

  private async probe(file: string) {
    if (!this.deps.ffprobePath)
      throw refuse(
        'UNPROCESSABLE',
        'probe_unavailable',
        this.deps.ffprobeError ?? 'ffprobe is not available',
      );
    try {
      return await probeAsset(this.deps.ffprobePath, file, this.deps.limits.probeTimeoutMs);
    } catch (err) {
      if (!(err instanceof AssetProbeError)) throw err;
      throw err.reason === 'unknown_type'
        ? refuse('UNSUPPORTED_MEDIA_TYPE', 'unknown_type', err.message)
        : refuse('UNPROCESSABLE', 'unreadable', err.message);
    }
  }

  /** The probed kind, reconciled with what the uploader declared. */
  private kindOf(
    probed: Awaited<ReturnType<AssetService['probe']>>,
    declared: AssetKind | undefined,
  ): AssetKind {
    if (declared === 'logo') {
      if (probed.mime === 'image/png' && probed.has_alpha) return 'logo';
      throw refuse(
        'UNPROCESSABLE',
        'mismatched_type',
        `a logo must be a PNG with an alpha channel; the content is ${probed.mime}${probed.mime === 'image/png' ? ' without alpha' : ''}`,
        { declared, probed: probed.kind, mime: probed.mime },
      );
    }
    if (declared && declared !== probed.kind)
      throw refuse(
        'UNPROCESSABLE',
        'mismatched_type',
        `declared ${declared}, but the content is ${probed.kind} (${probed.mime})`,
        {
          declared,
          probed: probed.kind,
          mime: probed.mime,
        },
      );
    return probed.kind;
  }

  async get(id: number): Promise<Asset> {
    const a = await this.deps.repo.get(id);
    if (!a) throw notFound('ASSET_NOT_FOUND', 'asset', id);
    return a;
  }

  async list(clientId: number, kind?: AssetKind): Promise<Asset[]> {
    if (!(await this.deps.repo.clientExists(clientId)))
      throw notFound('CLIENT_NOT_FOUND', 'client', clientId);
    return this.deps.repo.list(clientId, kind);
  }

  async download(id: number): Promise<FileDownload> {
    const a = await this.get(id);
    const file = await this.deps.storage.file(a.storage_key);
    if (!file) throw new AppError('MEDIA_FILE_NOT_FOUND', `asset ${id}'s file is no longer stored`);
    const ext = a.mime.split('/')[1]?.replace('quicktime', 'mov').replace('mpeg', 'mp3') ?? 'bin';
    const fileName = `asset-${a.id}.${ext}`;
    const presignedUrl = await this.deps.storage.presignedUrl(a.storage_key, {
      filename: fileName,
      contentType: a.mime,
    });
    return { file, contentType: a.mime, fileName, presignedUrl };
  }

  /**
   * Deletes an asset: 409 while a queued or running render reads it (finished
   * renders no longer need it). Its stored object goes when no other row shares it.
   *
   * Under the sha256's lock (see the class comment), which orders it against
   * uploads of the same bytes; its check and removal of the row are one
   * `locked` step, which orders it against a render request recording the
   * asset (MediaRequests.requestRender): a render recorded before it is seen
   * here, and one after it finds the asset gone.
   */
  async delete(id: number): Promise<void> {
    const { sha256, storage_key: key } = await this.get(id);
    await this.deps.repo.withShaLock(sha256, async (locked) => {
      const left = await locked.locked(async (tx) => {
        if (!(await tx.lockForDelete(id))) throw notFound('ASSET_NOT_FOUND', 'asset', id);
        const renders = await tx.activeRendersUsing(id);
        if (renders.length > 0)
          throw new AppError(
            'ASSET_IN_USE',
            `asset ${id} is used by render ${renders.join(', ')} in progress`,
            {
              renders,
            },
          );
        await tx.delete(id);
        return tx.countSha(sha256);
      });
      if (left === 0) await this.deps.storage.delete(key);
    });
  }

  /** Chooses (or with null clears) the logo of a client, or the music of a campaign or a content. */
  async choose(owner: ChoiceOwner, ownerId: number, role: ChoiceRole, assetId: number | null): Promise<void> {
    const clientId = await this.deps.repo.ownerClient(owner, ownerId);
    if (clientId === undefined) throw notFound(OWNER_NOT_FOUND[owner], owner, ownerId);
    if (assetId !== null) {
      const a = await this.get(assetId);
      if (a.client_id !== clientId)
        throw refuse('UNPROCESSABLE', 'mismatched_type', `asset ${assetId} belongs to another client`);
      const fits = role === 'logo' ? a.mime === 'image/png' && a.has_alpha === 1 : a.kind === 'audio';
      if (!fits)
        throw refuse(
          'UNPROCESSABLE',
          'mismatched_type',
          role === 'logo'
            ? `a logo must be a PNG with alpha; asset ${assetId} is ${a.mime}${a.has_alpha ? '' : ' without alpha'}`
            : `music must be audio; asset ${assetId} is ${a.kind}`,
        );
    }
    await this.deps.repo.setChoice(owner, ownerId, role, assetId);
  }
}

const OWNER_NOT_FOUND: Record<ChoiceOwner, ErrorCode> = {
  client: 'CLIENT_NOT_FOUND',
  campaign: 'CAMPAIGN_NOT_FOUND',
  content: 'CONTENT_NOT_FOUND',
};
