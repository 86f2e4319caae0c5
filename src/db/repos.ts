import { ApiKeysRepo } from './api-keys.repo.js';
import { CampaignStatsRepo } from './campaign-stats.repo.js';
import { CampaignsRepo } from './campaigns.repo.js';
import { ClientsRepo } from './clients.repo.js';
import { ContentsRepo } from './contents.repo.js';
import { MetricsRepo } from './metrics.repo.js';
import { ScriptsRepo } from './scripts.repo.js';
import type { Db, Dialect } from './types.js';

export interface Repos {
  clients: ClientsRepo;
  campaigns: CampaignsRepo;
  contents: ContentsRepo;
  scripts: ScriptsRepo;
  metrics: MetricsRepo;
  /** The daily roll-ups of stats.aggregate. */
  campaignStats: CampaignStatsRepo;
  apiKeys: ApiKeysRepo;
}

export function createRepos(db: Db, dialect: Dialect): Repos {
  return {
    clients: new ClientsRepo(db),
    campaigns: new CampaignsRepo(db),
    contents: new ContentsRepo(db, dialect),
    scripts: new ScriptsRepo(db, dialect),
    metrics: new MetricsRepo(db, dialect),
    campaignStats: new CampaignStatsRepo(db),
    apiKeys: new ApiKeysRepo(db),
  };
}
