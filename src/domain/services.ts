import type { CacheService } from '../cache/cache.service.js';
import { withCache } from '../cache/cached-services.js';
import type { Repos } from '../db/repos.js';
import { CampaignsService } from './campaigns.service.js';
import { ClientsService } from './clients.service.js';
import { ContentsService } from './contents.service.js';
import { MetricsService } from './metrics.service.js';
import { ScriptsService } from './scripts.service.js';

export interface DomainServices {
  clients: ClientsService;
  campaigns: CampaignsService;
  contents: ContentsService;
  scripts: ScriptsService;
  metrics: MetricsService;
}

/** With a cache, reads go through it and writes invalidate what they change (see cache/cached-services.ts). */
export function createDomainServices(repos: Repos, cache?: CacheService): DomainServices {
  const services: DomainServices = {
    clients: new ClientsService(repos.clients),
    campaigns: new CampaignsService(repos.campaigns, repos.clients),
    contents: new ContentsService(repos.contents, repos.campaigns),
    scripts: new ScriptsService(repos.scripts, repos.contents),
    metrics: new MetricsService(repos.metrics, repos.contents),
  };
  return cache ? withCache(services, repos, cache) : services;
}
