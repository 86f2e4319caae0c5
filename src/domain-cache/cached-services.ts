import type { CacheService } from '../cache/cache.service.js';
import type { CampaignFilter } from '../db/campaigns.repo.js';
import type { Page } from '../db/pagination.js';
import type { Campaign, ContentStatus, Platform } from '../db/types.js';
import type { CampaignsService } from '../domain/campaigns.service.js';
import type { ContentsService, ContentView } from '../domain/contents.service.js';
import type { Script, ScriptsService, SimilarScript } from '../domain/scripts.service.js';
import type { DomainServices, ServiceApi } from '../domain/services.js';
import { gens } from './generations.js';

/**
 * Reads served through the cache; every other method is the service's own. Writes are
 * not touched here: the services announce them and `invalidateOnChange` bumps the
 * generations these reads depend on. A method added to a service must be added here
 * too (the `implements` clause fails to compile otherwise).
 */
class CachedCampaigns implements ServiceApi<CampaignsService> {
  constructor(
    private readonly inner: ServiceApi<CampaignsService>,
    private readonly cache: CacheService,
  ) {}

  get(id: number): Promise<Campaign> {
    return this.cache.getOrSet('campaign', [id], () => this.inner.get(id), {
      deps: [gens.campaign(id), gens.cascade],
    });
  }

  list(filter: CampaignFilter, opts: { limit?: number; cursor?: string }): Promise<Page<Campaign>> {
    return this.cache.getOrSet('campaign_list', [filter, opts], () => this.inner.list(filter, opts), {
      deps: [gens.campaigns, gens.cascade],
    });
  }

  create: CampaignsService['create'] = (input) => this.inner.create(input);
  update: CampaignsService['update'] = (id, patch) => this.inner.update(id, patch);
  delete: CampaignsService['delete'] = (id) => this.inner.delete(id);
}

class CachedContents implements ServiceApi<ContentsService> {
  constructor(
    private readonly inner: ServiceApi<ContentsService>,
    private readonly cache: CacheService,
  ) {}

  get(id: number): Promise<ContentView> {
    return this.cache.getOrSet('content', [id], () => this.inner.get(id), {
      deps: [gens.content(id), gens.cascade],
    });
  }

  list(
    campaignId: number,
    filter: { status?: ContentStatus; q?: string },
    opts: { limit?: number; cursor?: string },
  ): Promise<Page<ContentView>> {
    return this.cache.getOrSet(
      'content_list',
      [campaignId, filter, opts],
      () => this.inner.list(campaignId, filter, opts),
      { deps: [gens.campaign(campaignId), gens.cascade] },
    );
  }

  /** The stored row, uncached (callers check it before writing). */
  row: ContentsService['row'] = (id) => this.inner.row(id);
  create: ContentsService['create'] = (campaignId, input) => this.inner.create(campaignId, input);
  update: ContentsService['update'] = (id, patch) => this.inner.update(id, patch);
  delete: ContentsService['delete'] = (id) => this.inner.delete(id);
}

class CachedScripts implements ServiceApi<ScriptsService> {
  constructor(
    private readonly inner: ServiceApi<ScriptsService>,
    private readonly cache: CacheService,
  ) {}

  get(contentId: number): Promise<Script> {
    return this.cache.getOrSet('script', [contentId], () => this.inner.get(contentId), {
      deps: [gens.content(contentId), gens.cascade],
    });
  }

  similar(opts: { platform: Platform; tone?: string; q?: string; limit: number }): Promise<SimilarScript[]> {
    return this.cache.getOrSet('similar_scripts', [opts], () => this.inner.similar(opts), {
      deps: [gens.similar],
      negative: true,
    });
  }

  replace: ScriptsService['replace'] = (contentId, blocks) => this.inner.replace(contentId, blocks);
  updateBlock: ScriptsService['updateBlock'] = (contentId, blockId, patch) =>
    this.inner.updateBlock(contentId, blockId, patch);
  reorder: ScriptsService['reorder'] = (contentId, blockIds) => this.inner.reorder(contentId, blockIds);
}

/**
 * The domain services with their cacheable reads wrapped (composition: each wrapper
 * holds the service it stands in for). Clients and metrics are not cached.
 */
export function withCachedReads(services: DomainServices, cache: CacheService): DomainServices {
  return {
    ...services,
    campaigns: new CachedCampaigns(services.campaigns, cache),
    contents: new CachedContents(services.contents, cache),
    scripts: new CachedScripts(services.scripts, cache),
  };
}
