import { randomUUID } from 'node:crypto';
import { type BigIntStats, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/** A stored file as a download sees it: what it is, and its bytes on demand. */
export interface StoredFile {
  size: number;
  modifiedAt: Date;
  /** A strong validator of exactly these bytes (quoted, as in an ETag header). */
  etag: string;
  /** The bytes from `start` to `end` (inclusive), or the whole file. */
  open(range?: { start: number; end: number }): Readable;
}

/** A stored file ready to download: the bytes, their type and the name a client saves them under. */
export interface FileDownload {
  file: StoredFile;
  contentType: string;
  fileName: string;
}

/**
 * The storage root for media files. Rows store paths relative to it; files are
 * only ever found from a row (by id), and every resolved path is checked to
 * stay under the root, so no client-supplied path can reach the disk.
 */
export class MediaStorage {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  audioDir(generationId: number): string {
    return path.join('audio', String(generationId));
  }

  renderDir(renderId: number): string {
    return path.join('renders', String(renderId));
  }

  /** Absolute path of a stored relative path; throws if it would leave the root. */
  resolve(relative: string): string {
    const abs = path.resolve(this.root, relative);
    if (abs !== this.root && !abs.startsWith(this.root + path.sep))
      throw new Error(`media path ${JSON.stringify(relative)} is outside the storage root`);
    return abs;
  }

  /** Writes a file atomically (temp file + rename) and returns its relative path. */
  async write(relative: string, data: Uint8Array | string): Promise<string> {
    const abs = this.resolve(relative);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${randomUUID()}.tmp`;
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, abs);
    return relative;
  }

  async ensureDir(relative: string): Promise<string> {
    const abs = this.resolve(relative);
    await fs.mkdir(abs, { recursive: true });
    return abs;
  }

  async size(relative: string): Promise<number | undefined> {
    try {
      return (await fs.stat(this.resolve(relative))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * The file at a relative path, or undefined when it is not stored. The ETag is
   * made from size and modification time (nanoseconds): files are replaced whole
   * (write() renames a temp file into place), so a change moves one or the other.
   */
  async file(relative: string): Promise<StoredFile | undefined> {
    const abs = this.resolve(relative);
    let st: BigIntStats;
    try {
      st = await fs.stat(abs, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return {
      size: Number(st.size),
      modifiedAt: new Date(Number(st.mtimeMs)),
      etag: `"${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`,
      open: (range) => createReadStream(abs, range ?? {}),
    };
  }

  async read(relative: string): Promise<Buffer> {
    return fs.readFile(this.resolve(relative));
  }
}
