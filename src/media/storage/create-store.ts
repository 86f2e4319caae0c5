import { LocalMediaStore } from './local-store.js';
import type { MediaStore } from './media-store.js';
import { S3MediaStore, type S3StoreOptions } from './s3-store.js';

/** Where media lives: `MEDIA_DIR` on local disk (default) or an S3-compatible bucket (`MEDIA_STORAGE_URL`). */
export type MediaStorageConfig = { kind: 'local'; dir: string } | ({ kind: 's3' } & S3StoreOptions);

export function createMediaStore(config: MediaStorageConfig): MediaStore {
  return config.kind === 'local' ? new LocalMediaStore(config.dir) : new S3MediaStore(config);
}
