import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { DatabaseConfig } from '../../src/config/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import type { BlockKind, Db } from '../../src/db/types.js';
import type { MediaRepo } from '../../src/media/media.repo.js';
import type { MediaStore } from '../../src/media/storage/media-store.js';
import { loadMediaConfig, type MediaConfig } from '../../src/config/media.js';

export const silentLogger = pino({ level: 'silent' });

export async function openMigrated(config: DatabaseConfig): Promise<DatabaseHandle> {
  const handle = openDatabase(config);
  await migrateToLatest(handle.db, config);
  return handle;
}

export function tempDir(prefix = 'ov-media-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function mediaConfig(env: Record<string, string> = {}): MediaConfig {
  return loadMediaConfig({ MEDIA_DIR: tempDir(), MEDIA_SCRATCH_DIR: tempDir('ov-scratch-'), ...env });
}

export interface SeededContent {
  clientId: number;
  campaignId: number;
  contentId: number;
}

/** A client, a campaign and a content with the given blocks, inserted directly. */
export async function seedContent(
  db: Db,
  blocks: (
    | string
    | { text: string; kind?: BlockKind; subtitle_text?: string; duration_s?: number; background?: string }
  )[],
  opts: {
    language?: string;
    brandColor?: string | null;
    platform?: 'youtube' | 'instagram' | 'tiktok' | 'facebook';
  } = {},
): Promise<SeededContent> {
  const now = new Date().toISOString();
  const client = await db
    .insertInto('clients')
    .values({
      name: '오늘커피',
      brand_color: opts.brandColor === undefined ? '#1E3A8A' : opts.brandColor,
      industry: 'food',
      contact_email: null,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const campaign = await db
    .insertInto('campaigns')
    .values({
      client_id: client.id,
      name: '봄 신메뉴',
      description: null,
      status: 'active',
      platform: opts.platform ?? 'tiktok',
      concept_tone: null,
      concept_style: null,
      voice: null,
      language: opts.language ?? 'ko',
      target_duration_s: 30,
      start_date: null,
      end_date: null,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const content = await db
    .insertInto('contents')
    .values({
      campaign_id: campaign.id,
      title: '봄 라떼 소개',
      platform: opts.platform ?? 'tiktok',
      status: 'scripted',
      keywords: '[]',
      publish_at: null,
      published_at: null,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  if (blocks.length > 0)
    await db
      .insertInto('script_blocks')
      .values(
        blocks.map((b, i) => {
          const o = typeof b === 'string' ? { text: b } : b;
          return {
            content_id: content.id,
            sequence: i + 1,
            kind: o.kind ?? (i === 0 ? 'hook' : 'body'),
            text: o.text,
            subtitle_text: o.subtitle_text ?? null,
            duration_s: o.duration_s ?? null,
            background: o.background ?? null,
            transition: null,
            created_at: now,
            updated_at: now,
          };
        }),
      )
      .execute();
  return { clientId: client.id, campaignId: campaign.id, contentId: content.id };
}

/** A local file with a stored object's bytes, whatever the store (local directory or S3). */
export async function storedFile(store: MediaStore, key: string): Promise<string> {
  return store.localCopy(key, tempDir('ov-stored-'));
}

/** A queued eSpeak narration row (Korean, default voice) for a content. */
export function espeakGeneration(repo: MediaRepo, contentId: number) {
  return repo.createAudioGeneration({
    content_id: contentId,
    provider: 'espeak',
    voice: null,
    language: 'ko',
    text_hash: null,
  });
}
