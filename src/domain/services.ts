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

export function createDomainServices(repos: Repos): DomainServices {
  return {
    clients: new ClientsService(repos.clients),
    campaigns: new CampaignsService(repos.campaigns, repos.clients),
    contents: new ContentsService(repos.contents, repos.campaigns),
    scripts: new ScriptsService(repos.scripts, repos.contents),
    metrics: new MetricsService(repos.metrics, repos.contents),
  };
}
