import type { CampaignsRepo } from '../db/campaigns.repo.js';
import type { ContentPatch, ContentsRepo } from '../db/contents.repo.js';
import { searchTerms } from '../db/full-text.js';
import { DEFAULT_PAGE_LIMIT, decodeCursor, type Page, toPage } from '../db/pagination.js';
import type { Content, ContentStatus, Platform } from '../db/types.js';
import { notFound } from '../errors.js';
import { announcing, type ChangeNotifier } from './changes.js';

/** A content as the API shows it: keywords as an array. */
export type ContentView = Omit<Content, 'keywords'> & { keywords: string[] };

export interface ContentInput {
  title: string;
  platform?: Platform;
  status?: ContentStatus;
  keywords?: string[];
  publish_at?: string | null;
  published_at?: string | null;
}

export type ContentUpdate = Partial<ContentInput>;

export function toContentView(c: Content): ContentView {
  return { ...c, keywords: JSON.parse(c.keywords) as string[] };
}

export class ContentsService {
  constructor(
    private readonly contents: ContentsRepo,
    private readonly campaigns: CampaignsRepo,
    private readonly changes: ChangeNotifier,
  ) {}

  async create(campaignId: number, input: ContentInput): Promise<ContentView> {
    const campaign = await this.campaigns.get(campaignId);
    if (!campaign) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', campaignId);
    const row = await this.contents.create({
      campaign_id: campaignId,
      title: input.title,
      platform: input.platform ?? campaign.platform,
      status: input.status ?? 'draft',
      keywords: JSON.stringify(input.keywords ?? []),
      publish_at: input.publish_at ?? null,
      published_at: input.published_at ?? null,
    });
    await this.changes.changed({ entity: 'content', op: 'created', id: row.id, campaignId });
    return toContentView(row);
  }

  async get(id: number): Promise<ContentView> {
    return toContentView(await this.row(id));
  }

  /** The stored row; throws CONTENT_NOT_FOUND. */
  async row(id: number): Promise<Content> {
    const c = await this.contents.get(id);
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return c;
  }

  async list(
    campaignId: number,
    filter: { status?: ContentStatus; q?: string },
    opts: { limit?: number; cursor?: string },
  ): Promise<Page<ContentView>> {
    if (!(await this.campaigns.get(campaignId))) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', campaignId);
    const limit = opts.limit ?? DEFAULT_PAGE_LIMIT;
    const cursor = opts.cursor !== undefined ? decodeCursor(opts.cursor) : undefined;
    const terms = filter.q !== undefined ? searchTerms(filter.q) : undefined;
    // A query with nothing searchable in it matches nothing, rather than everything.
    if (terms !== undefined && terms.length === 0) return { items: [], next_cursor: null };
    const rows = await this.contents.list(
      { campaignId, status: filter.status, terms },
      { limit: limit + 1, cursor },
    );
    const page = toPage(rows, limit);
    return { items: page.items.map(toContentView), next_cursor: page.next_cursor };
  }

  async update(id: number, patch: ContentUpdate): Promise<ContentView> {
    const { keywords, ...rest } = patch;
    const row: ContentPatch = {
      ...rest,
      ...(keywords !== undefined ? { keywords: JSON.stringify(keywords) } : {}),
    };
    let campaignId: number | undefined;
    const c = await announcing(
      this.changes,
      async () => {
        const updated = await this.contents.update(id, row);
        campaignId = updated?.campaign_id;
        return updated;
      },
      () => [{ entity: 'content', op: 'updated', id, campaignId }],
    );
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return toContentView(c);
  }

  async delete(id: number): Promise<void> {
    // The campaign is known only before the row goes.
    const campaignId = (await this.contents.get(id))?.campaign_id;
    const deleted = await announcing(
      this.changes,
      () => this.contents.delete(id),
      () => [{ entity: 'content', op: 'deleted', id, campaignId }],
    );
    if (!deleted) throw notFound('CONTENT_NOT_FOUND', 'content', id);
  }
}
