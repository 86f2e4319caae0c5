import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  type ByteRange,
  checkKey,
  type MediaStore,
  type PutOptions,
  type StoredFile,
} from './media-store.js';
import type { S3StorageConfig } from '../../config/media.js';

const isNotFound = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey');

/**
 * Media in an S3-compatible bucket through the AWS SDK v3. Credentials come
 * from the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
 * AWS_PROFILE, web identity, instance roles). Files over one part are sent as
 * multipart uploads, which S3 makes visible only on completion; a failed
 * upload is aborted, and one whose process died is never completed, so no
 * half object appears under a key (a bucket lifecycle rule should expire
 * incomplete multipart uploads to reclaim their parts).
 */
export class S3MediaStore implements MediaStore {
  readonly kind = 's3';
  readonly client: S3Client;
  constructor(private readonly opts: S3StorageConfig) {
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
    });
  }

  get location(): string {
    return `s3://${this.opts.bucket}${this.opts.prefix ? `/${this.opts.prefix}` : ''}`;
  }

  locate(key: string): string {
    return `s3://${this.opts.bucket}/${this.key(key)}`;
  }

  private key(key: string): string {
    const k = checkKey(key);
    return this.opts.prefix ? `${this.opts.prefix}/${k}` : k;
  }

  async put(key: string, body: Uint8Array | string | Readable, opts: PutOptions = {}): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.opts.bucket, Key: this.key(key), Body: body, ContentType: opts.contentType },
      partSize: this.opts.partSizeBytes,
      queueSize: 4,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  /**
   * A local file goes up in parts read straight from it, two in flight: memory
   * stays near two parts whatever the file's size (lib-storage, which `put`
   * uses for streams of unknown length, holds up to four parts and their
   * copies). The upload is completed only once every part is stored, and
   * aborted when one fails.
   */
  async putFile(key: string, file: string, opts: PutOptions = {}): Promise<void> {
    const Bucket = this.opts.bucket;
    const Key = this.key(key);
    const handle = await fs.open(file, 'r');
    try {
      const { size } = await handle.stat();
      const partSize = this.opts.partSizeBytes;
      /** Bytes start..start+length of the file, into `into` (a lane's own buffer, reused part after part). */
      const readPart = async (start: number, length: number, into = Buffer.allocUnsafe(length)) => {
        const body = into.subarray(0, length);
        for (let got = 0; got < length;) {
          const { bytesRead } = await handle.read(body, got, length - got, start + got);
          if (bytesRead === 0)
            throw new Error(`${file} ended at ${start + got} of ${size} bytes while uploading`);
          got += bytesRead;
        }
        return body;
      };
      if (size <= partSize) {
        await this.client.send(
          new PutObjectCommand({ Bucket, Key, Body: await readPart(0, size), ContentType: opts.contentType }),
        );
        return;
      }
      const { UploadId } = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket, Key, ContentType: opts.contentType }),
      );
      try {
        const count = Math.ceil(size / partSize);
        const parts: CompletedPart[] = [];
        let next = 0;
        const sendParts = async () => {
          const buffer = Buffer.allocUnsafe(partSize);
          for (let i = next++; i < count; i = next++) {
            const start = i * partSize;
            const r = await this.client.send(
              new UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber: i + 1,
                Body: await readPart(start, Math.min(partSize, size - start), buffer),
              }),
            );
            parts[i] = { ETag: r.ETag, PartNumber: i + 1, ChecksumCRC32: r.ChecksumCRC32 };
          }
        };
        await Promise.all([sendParts(), sendParts()]);
        await this.client.send(
          new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
        );
      } catch (err) {
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
        } catch (abortErr) {
          throw new AggregateError(
            [err, abortErr],
            `upload of ${key} failed, and so did discarding its parts`,
          );
        }
        throw err;
      }
    } finally {
      await handle.close();
    }
  }

  async file(key: string): Promise<StoredFile | undefined> {
    let head: HeadObjectCommandOutput;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const etag = head.ETag ?? '';
    return {
      size: head.ContentLength ?? 0,
      modifiedAt: head.LastModified ?? new Date(0),
      // S3's ETag is already quoted; a missing one (never from S3) falls back to size and date.
      etag: etag.startsWith('"') ? etag : `"${head.ContentLength ?? 0}-${head.LastModified?.getTime() ?? 0}"`,
      // IfMatch: a range read of an object replaced since the HEAD fails instead of mixing versions.
      open: (range) => Readable.from(this.stream(key, range, etag || undefined)),
    };
  }

  private async *stream(key: string, range: ByteRange | undefined, ifMatch?: string): AsyncGenerator<Buffer> {
    const body = await this.open(key, range, ifMatch);
    if (!body) throw new Error(`media object ${key} is no longer in ${this.location}`);
    yield* body;
  }

  private async open(key: string, range?: ByteRange, ifMatch?: string): Promise<Readable | undefined> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({
          Bucket: this.opts.bucket,
          Key: this.key(key),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
          IfMatch: ifMatch,
        }),
      );
      if (!(r.Body instanceof Readable)) throw new Error('S3 GetObject returned no Node stream');
      return r.Body;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async read(key: string): Promise<Buffer | undefined> {
    const body = await this.open(key);
    if (!body) return undefined;
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async localCopy(key: string, scratchDir: string): Promise<string> {
    const body = await this.open(key);
    if (!body) throw new Error(`media object ${key} is not in ${this.location}`);
    const file = path.join(scratchDir, ...checkKey(key).split('/'));
    await fs.mkdir(path.dirname(file), { recursive: true });
    await pipeline(body, createWriteStream(file));
    return file;
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
  }

  async presignedUrl(
    key: string,
    opts: { filename: string; contentType: string },
  ): Promise<string | undefined> {
    if (this.opts.presignTtlS <= 0) return undefined;
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.opts.bucket,
        Key: this.key(key),
        ResponseContentType: opts.contentType,
        ResponseContentDisposition: `inline; filename="${opts.filename}"`,
      }),
      { expiresIn: this.opts.presignTtlS },
    );
  }

  close(): void {
    this.client.destroy();
  }
}
