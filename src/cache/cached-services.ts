import type { CampaignFilter } from '../db/campaigns.repo.js';
import type { Page } from '../db/pagination.js';
import type { Repos } from '../db/repos.js';
import type { BlockInput } from '../db/scripts.repo.js';
import type { Campaign, ContentStatus, Platform, ScriptBlock } from '../db/types.js';
import { type CampaignInput, CampaignsService, type CampaignUpdate } from '../domain/campaigns.service.js';
import { ClientsService } from '../domain/clients.service.js';
import {
  type ContentInput,
  ContentsService,
  type ContentUpdate,
  type ContentView,
} from '../domain/contents.service.js';
import { type MetricInput, MetricsService } from '../domain/metrics.service.js';
import { type Script, type SimilarScript, ScriptsService } from '../domain/scripts.service.js';
import type { CacheService } from './cache.service.js';

/**
 * Which generation each cached read depends on, and so what a write must bump:
 *
 * | read (prefix)                  | depends on                       |
 * |--------------------------------|----------------------------------|
 * | campaign (campaign get)        | campaign:<id>, cascade           |
 * | campaign_list                  | campaigns, cascade               |
 * | content (content get)          | content:<id>, cascade            |
 * | content_list (of a campaign)   | campaign:<campaign id>, cascade  |
 * | script (of a content)          | content:<id>, cascade            |
 * | similar_scripts                | similar                          |
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

/** What a stats.aggregate run invalidates: one campaign's roll-ups, or everyone's. */
export const statsWrite = (campaignId: number | null) =>
  campaignId === null ? [gens.stats] : [gens.campaignStats(campaignId)];

/** Generations a write to one content moves: its own entries, its campaign's lists, similar scripts. */
export const contentWrite = (id: number, campaignId: number | undefined) => [
  gens.content(id),
  ...(campaignId !== undefined ? [gens.campaign(campaignId)] : []),
  gens.similar,
];

/** Runs a write, then invalidates (also when it failed part-way: invalidating too much is harmless). */
async function writeThrough<T>(
  cache: CacheService,
  names: () => string[],
  write: () => Promise<T>,
): Promise<T> {
  try {
    return await write();
  } finally {
    await cache.invalidate(...names());
  }
}

export class CachedClientsService extends ClientsService {
  constructor(
    repos: Repos,
    private readonly cache: CacheService,
  ) {
    super(repos.clients);
  }

  /** Deleting a client deletes its campaigns by cascade. */
  override delete(id: number): Promise<void> {
    return writeThrough(
      this.cache,
      () => [gens.campaigns, gens.similar, gens.cascade],
      () => super.delete(id),
    );
  }
}

export class CachedCampaignsService extends CampaignsService {
  constructor(
    repos: Repos,
    private readonly cache: CacheService,
  ) {
    super(repos.campaigns, repos.clients);
  }

  override get(id: number): Promise<Campaign> {
    return this.cache.getOrSet('campaign', [id], () => super.get(id), {
      deps: [gens.campaign(id), gens.cascade],
    });
  }

  override list(filter: CampaignFilter, opts: { limit?: number; cursor?: string }): Promise<Page<Campaign>> {
    return this.cache.getOrSet('campaign_list', [filter, opts], () => super.list(filter, opts), {
      deps: [gens.campaigns, gens.cascade],
    });
  }

  override async create(input: CampaignInput): Promise<Campaign> {
    const c = await super.create(input);
    // Its own generation too: a read of this id may have run before it existed.
    await this.cache.invalidate(gens.campaign(c.id), gens.campaigns);
    return c;
  }

  override update(id: number, patch: CampaignUpdate): Promise<Campaign> {
    return writeThrough(
      this.cache,
      () => [gens.campaign(id), gens.campaigns, gens.similar],
      () => super.update(id, patch),
    );
  }

  override delete(id: number): Promise<void> {
    return writeThrough(
      this.cache,
      () => [gens.campaign(id), gens.campaigns, gens.similar, gens.cascade],
      () => super.delete(id),
    );
  }
}

export class CachedContentsService extends ContentsService {
  constructor(
    private readonly repos: Repos,
    private readonly cache: CacheService,
  ) {
    super(repos.contents, repos.campaigns);
  }

  override get(id: number): Promise<ContentView> {
    return this.cache.getOrSet('content', [id], () => super.get(id), {
      deps: [gens.content(id), gens.cascade],
    });
  }

  override list(
    campaignId: number,
    filter: { status?: ContentStatus; q?: string },
    opts: { limit?: number; cursor?: string },
  ): Promise<Page<ContentView>> {
    return this.cache.getOrSet(
      'content_list',
      [campaignId, filter, opts],
      () => super.list(campaignId, filter, opts),
      { deps: [gens.campaign(campaignId), gens.cascade] },
    );
  }

  override async create(campaignId: number, input: ContentInput): Promise<ContentView> {
    const c = await super.create(campaignId, input);
    await this.cache.invalidate(gens.content(c.id), gens.campaign(campaignId));
    return c;
  }

  override async update(id: number, patch: ContentUpdate): Promise<ContentView> {
    let campaignId: number | undefined;
    return writeThrough(
      this.cache,
      () => contentWrite(id, campaignId),
      async () => {
        const c = await super.update(id, patch);
        campaignId = c.campaign_id;
        return c;
      },
    );
  }

  override async delete(id: number): Promise<void> {
    // The campaign is known only before the row goes.
    const campaignId = (await this.repos.contents.get(id))?.campaign_id;
    // Its ai_api_usage rows lose their content_id (ON DELETE SET NULL): cost summaries by content move.
    return writeThrough(
      this.cache,
      () => [...contentWrite(id, campaignId), gens.costs],
      () => super.delete(id),
    );
  }
}

/** Script writes change the content's status and updated_at too, so its campaign's lists move. */
export class CachedScriptsService extends ScriptsService {
  constructor(
    private readonly repos: Repos,
    private readonly cache: CacheService,
  ) {
    super(repos.scripts, repos.contents);
  }

  override get(contentId: number): Promise<Script> {
    return this.cache.getOrSet('script', [contentId], () => super.get(contentId), {
      deps: [gens.content(contentId), gens.cascade],
    });
  }

  override similar(opts: {
    platform: Platform;
    tone?: string;
    q?: string;
    limit: number;
  }): Promise<SimilarScript[]> {
    return this.cache.getOrSet('similar_scripts', [opts], () => super.similar(opts), {
      deps: [gens.similar],
      negative: true,
    });
  }

  override replace(contentId: number, blocks: BlockInput[]): Promise<Script> {
    return this.scriptWrite(contentId, () => super.replace(contentId, blocks));
  }

  override updateBlock(contentId: number, blockId: number, patch: Partial<BlockInput>): Promise<ScriptBlock> {
    return this.scriptWrite(contentId, () => super.updateBlock(contentId, blockId, patch));
  }

  override reorder(contentId: number, blockIds: number[]): Promise<Script> {
    return this.scriptWrite(contentId, () => super.reorder(contentId, blockIds));
  }

  private async scriptWrite<T>(contentId: number, write: () => Promise<T>): Promise<T> {
    const campaignId = (await this.repos.contents.get(contentId))?.campaign_id;
    return writeThrough(this.cache, () => contentWrite(contentId, campaignId), write);
  }
}

/** Ingesting metrics moves the content's latest score: its entries, its campaign's lists and the similar-scripts ranking. */
export class CachedMetricsService extends MetricsService {
  constructor(
    private readonly repos: Repos,
    private readonly cache: CacheService,
  ) {
    super(repos.metrics, repos.contents);
  }

  override async ingest(contentId: number, input: MetricInput[]): Promise<{ inserted: number }> {
    const campaignId = (await this.repos.contents.get(contentId))?.campaign_id;
    return writeThrough(
      this.cache,
      () => contentWrite(contentId, campaignId),
      () => super.ingest(contentId, input),
    );
  }
}

interface CacheableServices {
  clients: ClientsService;
  campaigns: CampaignsService;
  contents: ContentsService;
  scripts: ScriptsService;
  metrics: MetricsService;
}

/**
 * The domain services with reads cached and writes invalidating what they change.
 * Services it does not know pass through unchanged.
 */
export function withCache<S extends CacheableServices>(services: S, repos: Repos, cache: CacheService): S {
  return {
    ...services,
    clients: new CachedClientsService(repos, cache),
    campaigns: new CachedCampaignsService(repos, cache),
    contents: new CachedContentsService(repos, cache),
    scripts: new CachedScriptsService(repos, cache),
    metrics: new CachedMetricsService(repos, cache),
  };
}
