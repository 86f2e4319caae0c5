import type { Logger } from 'pino';
import type { CacheService } from '../cache/cache.service.js';
import { type Change, ChangeFeed } from '../domain/changes.js';

/**
 * Cache generation names of the domain's cached reads, and the one place that maps a
 * domain change to the generations it moves. `cache/` knows neither: it only bumps names.
 *
 * | read (prefix)                  | depends on                                 |
 * |--------------------------------|--------------------------------------------|
 * | campaign (campaign get)        | campaign:<id>, cascade                     |
 * | campaign_list                  | campaigns, cascade                         |
 * | content (content get)          | content:<id>, cascade                      |
 * | content_list (of a campaign)   | campaign:<campaign id>, cascade            |
 * | script (of a content)          | content:<id>, cascade                      |
 * | similar_scripts                | similar                                    |
 * | campaign_stats                 | stats, stats:campaign:<id>, cascade        | (metric ingests move it too: `stale`)
 * | cost_summary                   | costs, cascade                             |
 *
 * `cascade` moves when a client or campaign is deleted: the database deletes their
 * campaigns, contents and scripts by cascade, and listing them to bump each would not be O(1).
 */
export const gens = {
  campaign: (id: number) => `campaign:${id}`,
  content: (id: number) => `content:${id}`,
  campaigns: 'campaigns',
  similar: 'similar',
  cascade: 'cascade',
  /** Roll-ups of every campaign (a stats.aggregate run over all of them). */
  stats: 'stats',
  campaignStats: (id: number) => `stats:campaign:${id}`,
  /** Vendor spend (ai_api_usage): moved by narration, and by deletes that null its references. */
  costs: 'costs',
} as const;

/** What a cached campaign stats read depends on: roll-up runs (all, or this campaign's) and cascading deletes. */
export const campaignStatsDeps = (id: number) => [gens.stats, gens.campaignStats(id), gens.cascade];

/** What a cached cost summary depends on. */
export const costSummaryDeps = [gens.costs, gens.cascade] as const;

/** Generations a change to one content's row, script or metrics moves: its entries, its campaign's lists, similar scripts. */
const contentWrite = (id: number, campaignId: number | undefined) => [
  gens.content(id),
  ...(campaignId !== undefined ? [gens.campaign(campaignId)] : []),
  gens.similar,
];

/** The generations one change moves. */
export function generationsFor(change: Change): string[] {
  switch (change.entity) {
    case 'client':
      // Clients are not cached; deleting one deletes its campaigns by cascade.
      return change.op === 'deleted' ? [gens.campaigns, gens.similar, gens.cascade] : [];
    case 'campaign':
      if (change.op === 'created') return [gens.campaign(change.id), gens.campaigns];
      return [
        gens.campaign(change.id),
        gens.campaigns,
        gens.similar,
        ...(change.op === 'deleted' ? [gens.cascade] : []),
      ];
    case 'content':
      if (change.op === 'created')
        return [
          gens.content(change.id),
          ...(change.campaignId !== undefined ? [gens.campaign(change.campaignId)] : []),
        ];
      // A deleted content's ai_api_usage rows lose their content_id (ON DELETE SET NULL).
      return [
        ...contentWrite(change.id, change.campaignId),
        ...(change.op === 'deleted' ? [gens.costs] : []),
      ];
    case 'script':
      return contentWrite(change.contentId, change.campaignId);
    case 'metrics':
      // The campaign's stats now say they are stale (until the roll-up it triggers has run).
      return [
        ...contentWrite(change.contentId, change.campaignId),
        ...(change.campaignId !== undefined ? [gens.campaignStats(change.campaignId)] : []),
      ];
    case 'campaign_stats':
      return change.campaignId === null ? [gens.stats] : [gens.campaignStats(change.campaignId)];
    case 'vendor_usage':
      return [gens.costs];
  }
}

/** Where the generations go: a cache's invalidate (which never throws). */
export type GenerationSink = Pick<CacheService, 'invalidate'>;

/**
 * The one subscriber that keeps cached reads fresh: it bumps the generations each
 * announced change moves, once per name per announcement. The cache carries the bumps to
 * the other processes (Redis generations and the L1 bus, or the shared SQLite log).
 */
export function invalidateOnChange(feed: ChangeFeed, cache: GenerationSink): () => void {
  return feed.subscribe(async (changes) => {
    const names = new Set<string>();
    for (const c of changes) for (const n of generationsFor(c)) names.add(n);
    if (names.size > 0) await cache.invalidate(...names);
  });
}

/**
 * A process's change feed, with the cache (if any) subscribed: what composition roots
 * hand to every writer. Without a cache nothing listens, and writes cost nothing more.
 */
export function changeFeedFor(logger: Pick<Logger, 'warn'>, cache: GenerationSink | undefined): ChangeFeed {
  const feed = new ChangeFeed(logger);
  if (cache) invalidateOnChange(feed, cache);
  return feed;
}
