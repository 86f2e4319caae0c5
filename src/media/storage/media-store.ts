import type { Readable } from 'node:stream';

/** An inclusive byte range of an object. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A stored file as a download sees it: what it is, and its bytes on demand. */
export interface StoredFile {
  size: number;
  modifiedAt: Date;
  /** A strong validator of exactly these bytes (quoted, as in an ETag header). */
  etag: string;
  /** The bytes from `start` to `end` (inclusive), or the whole file. */
  open(range?: ByteRange): Readable;
}

/** A stored file ready to download: the bytes, their type and the name a client saves them under. */
export interface FileDownload {
  file: StoredFile;
  contentType: string;
  fileName: string;
  /** A short-lived URL to send the client to instead (S3 with presigned downloads on). */
  presignedUrl?: string;
}

export interface PutOptions {
  contentType?: string;
}

/**
 * Where media files live: audio, renders, caption files and uploaded assets.
 * Keys are relative slash-separated paths (`renders/12/video.mp4`) taken from
 * rows, never from a client. Every write is all-or-nothing: an object is
 * visible under its key only once it is complete (a temp file renamed
 * locally; a single PUT or a completed multipart upload on S3), so a process
 * that dies mid-upload leaves nothing that looks done.
 *
 * Processes do not share a disk: a worker fetches what a task reads
 * (`localCopy`) and uploads what it makes (`putFile`); the API streams
 * downloads from the store (`open`).
 */
export interface MediaStore {
  readonly kind: 'local' | 's3';
  /** Describes the store for logs and health: a directory, or `s3://bucket/prefix`. */
  readonly location: string;
  /** Where a key's object is, for people: a file path, or an `s3://` URL. */
  locate(key: string): string;
  /** Stores bytes or a stream under `key`. */
  put(key: string, body: Uint8Array | string | Readable, opts?: PutOptions): Promise<void>;
  /** Stores a local file under `key` (multipart on S3 for large files). */
  putFile(key: string, file: string, opts?: PutOptions): Promise<void>;
  /** The stored file (size, validators, a way to stream it), or undefined when there is no such object. */
  file(key: string): Promise<StoredFile | undefined>;
  /** The whole object in memory (manifests, small files); undefined when absent. */
  read(key: string): Promise<Buffer | undefined>;
  /**
   * A local file with the object's bytes for a tool that needs a path
   * (ffmpeg): the stored file itself for the local store, a download into
   * `scratchDir` for S3. The caller must not modify it.
   */
  localCopy(key: string, scratchDir: string): Promise<string>;
  /** Removes the object; absent is not an error. */
  delete(key: string): Promise<void>;
  /**
   * A short-lived URL a client can download from directly, or undefined when
   * the store cannot give one (local) or presigning is off.
   */
  presignedUrl(key: string, opts: { filename: string; contentType: string }): Promise<string | undefined>;
  /** Releases connections (S3's sockets). */
  close(): void;
}

/** Thrown when a stored key would leave the store (`..`, absolute paths). */
export class StorageKeyError extends Error {
  override name = 'StorageKeyError';
}

/** Checks that a key is a relative path without `.`/`..` segments; returns it with `/` separators. */
export function checkKey(key: string): string {
  const k = key.replace(/\\/g, '/');
  const parts = k.split('/');
  if (k === '' || k.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..'))
    throw new StorageKeyError(`media key ${JSON.stringify(key)} is not a relative path inside the store`);
  return k;
}

/** Keys of the files the pipeline writes. */
export const mediaKeys = {
  audioDir: (generationId: number) => `audio/${generationId}`,
  renderDir: (renderId: number) => `renders/${renderId}`,
  /** Uploaded assets are content-addressed: one object per sha256. */
  asset: (sha256: string) => `assets/${sha256.slice(0, 2)}/${sha256}`,
};
