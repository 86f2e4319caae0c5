import type { CampaignFilter, CampaignPatch, CampaignsRepo } from '../db/campaigns.repo.js';
import type { ClientsRepo } from '../db/clients.repo.js';
import { DEFAULT_PAGE_LIMIT, decodeCursor, type Page, toPage } from '../db/pagination.js';
import type { Campaign, CampaignStatus, Platform } from '../db/types.js';
import { AppError, notFound, validationFailed } from '../errors.js';
import { announcing, type ChangeNotifier } from './changes.js';

export interface CampaignInput {
  client_id: number;
  name: string;
  platform: Platform;
  description?: string | null;
  status?: CampaignStatus;
  concept_tone?: string | null;
  concept_style?: string | null;
  voice?: string | null;
  language?: string;
  target_duration_s?: number | null;
  start_date?: string | null;
  end_date?: string | null;
}

export type CampaignUpdate = Partial<Omit<CampaignInput, 'client_id'>>;

export class CampaignsService {
  constructor(
    private readonly campaigns: CampaignsRepo,
    private readonly clients: ClientsRepo,
    private readonly changes: ChangeNotifier,
  ) {}

  async create(input: CampaignInput): Promise<Campaign> {
    checkDates(input.start_date, input.end_date);
    if (!(await this.clients.get(input.client_id))) {
      throw new AppError('UNPROCESSABLE', `client ${input.client_id} does not exist`, { field: 'client_id' });
    }
    const c = await this.campaigns.create({
      client_id: input.client_id,
      name: input.name,
      platform: input.platform,
      description: input.description ?? null,
      status: input.status ?? 'active',
      concept_tone: input.concept_tone ?? null,
      concept_style: input.concept_style ?? null,
      voice: input.voice ?? null,
      language: input.language ?? 'ko',
      target_duration_s: input.target_duration_s ?? null,
      start_date: input.start_date ?? null,
      end_date: input.end_date ?? null,
    });
    // Announced with its own id too: a read of this id may have run before it existed.
    await this.changes.changed({ entity: 'campaign', op: 'created', id: c.id });
    return c;
  }

  async get(id: number): Promise<Campaign> {
    const c = await this.campaigns.get(id);
    if (!c) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', id);
    return c;
  }

  async list(filter: CampaignFilter, opts: { limit?: number; cursor?: string }): Promise<Page<Campaign>> {
    const limit = opts.limit ?? DEFAULT_PAGE_LIMIT;
    const cursor = opts.cursor !== undefined ? decodeCursor(opts.cursor) : undefined;
    if (filter.createdFrom && filter.createdTo && filter.createdFrom >= filter.createdTo) {
      throw validationFailed('created_to', 'must be after created_from');
    }
    return toPage(await this.campaigns.list(filter, { limit: limit + 1, cursor }), limit);
  }

  async update(id: number, patch: CampaignUpdate): Promise<Campaign> {
    if (patch.start_date !== undefined || patch.end_date !== undefined) {
      const current = await this.get(id);
      checkDates(
        patch.start_date !== undefined ? patch.start_date : current.start_date,
        patch.end_date !== undefined ? patch.end_date : current.end_date,
      );
    }
    const c = await announcing(
      this.changes,
      () => this.campaigns.update(id, patch as CampaignPatch),
      () => [{ entity: 'campaign', op: 'updated', id }],
    );
    if (!c) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', id);
    return c;
  }

  /** Deletes the campaign and, by cascade, its contents and scripts. */
  async delete(id: number): Promise<void> {
    const deleted = await announcing(
      this.changes,
      () => this.campaigns.delete(id),
      () => [{ entity: 'campaign', op: 'deleted', id }],
    );
    if (!deleted) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', id);
  }
}

function checkDates(start: string | null | undefined, end: string | null | undefined): void {
  if (start && end && end < start) throw validationFailed('end_date', 'must not be before start_date');
}
