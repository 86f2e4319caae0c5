import type { Repos } from '../db/repos.js';
import { CampaignsService } from './campaigns.service.js';
import type { ChangeNotifier } from './changes.js';
import { ClientsService } from './clients.service.js';
import { ContentsService } from './contents.service.js';
import { MetricsService } from './metrics.service.js';
import { ScriptsService } from './scripts.service.js';

/** A service's public methods: what a wrapper (cached reads) must provide to stand in for it. */
export type ServiceApi<S> = { [K in keyof S]: S[K] };

export interface DomainServices {
  clients: ServiceApi<ClientsService>;
  campaigns: ServiceApi<CampaignsService>;
  contents: ServiceApi<ContentsService>;
  scripts: ServiceApi<ScriptsService>;
  metrics: ServiceApi<MetricsService>;
}

/** The domain services; every write announces what it changed through `changes` (see changes.ts). */
export function createDomainServices(repos: Repos, changes: ChangeNotifier): DomainServices {
  return {
    clients: new ClientsService(repos.clients, changes),
    campaigns: new CampaignsService(repos.campaigns, repos.clients, changes),
    contents: new ContentsService(repos.contents, repos.campaigns, changes),
    scripts: new ScriptsService(repos.scripts, repos.contents, changes),
    metrics: new MetricsService(repos.metrics, repos.contents, changes),
  };
}
