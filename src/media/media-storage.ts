import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

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

  async read(relative: string): Promise<Buffer> {
    return fs.readFile(this.resolve(relative));
  }
}
