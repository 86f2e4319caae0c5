import type { Db } from '../db/types.js';
import type { CacheService } from './cache.service.js';
import { contentWrite, gens } from './cached-services.js';

/** What changed a content outside the domain services: the content itself, or a media row of it. */
export type ContentRef = { contentId: number } | { audioGenerationId: number } | { renderId: number };

/**
 * For code that changes a content without going through the domain services (tasks that
 * advance its status after narration or a render): invalidates the content's entries, its
 * campaign's lists and the similar-scripts ranking, as a domain write would. Never throws:
 * a failed lookup is logged by the caller's logger and the cache's own TTLs bound the rest.
 */
export async function invalidateContent(
  cache: CacheService | undefined,
  db: Db,
  ref: ContentRef,
  onError: (err: unknown) => void,
  /** Also cost summaries: the change came with vendor calls recorded in ai_api_usage (narration). */
  opts: { costs?: boolean } = {},
): Promise<void> {
  if (!cache) return;
  try {
    let contentId: number | undefined;
    if ('contentId' in ref) contentId = ref.contentId;
    else if ('audioGenerationId' in ref) {
      contentId = (
        await db
          .selectFrom('audio_generations')
          .select('content_id')
          .where('id', '=', ref.audioGenerationId)
          .executeTakeFirst()
      )?.content_id;
    } else {
      contentId = (
        await db.selectFrom('renders').select('content_id').where('id', '=', ref.renderId).executeTakeFirst()
      )?.content_id;
    }
    if (contentId === undefined) {
      if (opts.costs) await cache.invalidate(gens.costs);
      return;
    }
    const row = await db
      .selectFrom('contents')
      .select('campaign_id')
      .where('id', '=', contentId)
      .executeTakeFirst();
    await cache.invalidate(...contentWrite(contentId, row?.campaign_id), ...(opts.costs ? [gens.costs] : []));
  } catch (err) {
    onError(err);
  }
}
