/** Media services over one store (local directory or S3) on a fresh SQLite database, for suites run over both stores. */
import fs from 'node:fs';
import type { DatabaseHandle } from '../../src/db/database.js';
import { ChangeFeed } from '../../src/domain/changes.js';
import type { Asset } from '../../src/media/assets/assets.repo.js';
import { createMediaServices, type MediaServices } from '../../src/media/media-services.js';
import { freshDatabaseConfig } from '../support/backends.js';
import { mediaConfig, openMigrated, silentLogger } from './media-fixtures.js';

export interface StoredMedia {
  handle: DatabaseHandle;
  media: MediaServices;
  close(): Promise<void>;
}

/** `storageEnv` is the S3 target's env for S3 (test/support/s3.ts), nothing for the local store. */
export async function openStoredMedia(
  storageEnv: Record<string, string>,
  env: Record<string, string> = {},
): Promise<StoredMedia> {
  const handle = await openMigrated(await freshDatabaseConfig('sqlite'));
  const media = createMediaServices(
    mediaConfig({ ...env, ...storageEnv }),
    handle.db,
    handle.dialect,
    silentLogger,
    { changes: new ChangeFeed(silentLogger) },
  );
  return {
    handle,
    media,
    close: async () => {
      await media.close();
      await handle.close();
    },
  };
}

/** Uploads a file as the client's asset through the asset service (probed like an API upload). */
export async function uploadAsset(
  media: MediaServices,
  clientId: number,
  file: string,
  kind?: Asset['kind'],
): Promise<Asset> {
  const { asset } = await media.assets.upload(clientId, {
    stream: fs.createReadStream(file),
    filename: file,
    declaredKind: kind,
    truncated: () => false,
  });
  return asset;
}
