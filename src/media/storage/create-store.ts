import { LocalMediaStore } from './local-store.js';
import type { MediaStore } from './media-store.js';
import { S3MediaStore } from './s3-store.js';
import type { MediaStorageConfig } from '../../config/media.js';

export function createMediaStore(config: MediaStorageConfig): MediaStore {
  return config.kind === 'local' ? new LocalMediaStore(config.dir) : new S3MediaStore(config);
}
