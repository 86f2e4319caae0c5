import { randomUUID } from 'node:crypto';
import { type BigIntStats, createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkKey, type MediaStore, type StoredFile } from './media-store.js';

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Media in a local directory (the default, `$MEDIA_DIR`). Writes go to a temp
 * file beside the target and are renamed into place, so a reader never sees
 * half a file; every key is resolved and checked to stay under the root.
 */
export class LocalMediaStore implements MediaStore {
  readonly kind = 'local';
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get location(): string {
    return this.root;
  }

  /** Absolute path of a key; throws StorageKeyError if it would leave the root. */
  resolve(key: string): string {
    return path.join(this.root, ...checkKey(key).split('/'));
  }

  locate(key: string): string {
    return this.resolve(key);
  }

  private async atomically(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const abs = this.resolve(key);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${randomUUID()}.tmp`;
    try {
      await write(tmp);
      await fs.rename(tmp, abs);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async put(key: string, body: Uint8Array | string | Readable): Promise<void> {
    await this.atomically(key, async (tmp) => {
      if (body instanceof Readable) await pipeline(body, createWriteStream(tmp));
      else await fs.writeFile(tmp, body);
    });
  }

  async putFile(key: string, file: string): Promise<void> {
    await this.atomically(key, (tmp) => fs.copyFile(file, tmp));
  }

  /**
   * The ETag is made from size and modification time (nanoseconds): files are
   * replaced whole (a temp file renamed into place), so a change moves one or the other.
   */
  async file(key: string): Promise<StoredFile | undefined> {
    const abs = this.resolve(key);
    let st: BigIntStats;
    try {
      st = await fs.stat(abs, { bigint: true });
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!st.isFile()) return undefined;
    return {
      size: Number(st.size),
      modifiedAt: new Date(Number(st.mtimeMs)),
      etag: `"${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`,
      open: (range) => createReadStream(abs, range ?? {}),
    };
  }

  async read(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.resolve(key));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async localCopy(key: string): Promise<string> {
    const abs = this.resolve(key);
    await fs.access(abs);
    return abs;
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.resolve(key), { force: true });
  }

  async presignedUrl(): Promise<undefined> {
    return undefined;
  }

  close(): void {
    // Nothing held open between calls.
  }
}
