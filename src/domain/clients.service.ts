import type { ClientsRepo } from '../db/clients.repo.js';
import { DEFAULT_PAGE_LIMIT, type Page } from '../db/pagination.js';
import type { Client } from '../db/types.js';
import { AppError, notFound } from '../errors.js';
import { announcing, type ChangeNotifier } from './changes.js';

export interface ClientInput {
  name: string;
  brand_color?: string | null;
  industry?: string | null;
  contact_email?: string | null;
}

export class ClientsService {
  constructor(
    private readonly clients: ClientsRepo,
    private readonly changes: ChangeNotifier,
  ) {}

  async create(input: ClientInput): Promise<Client> {
    const c = await this.clients.create({
      name: input.name,
      brand_color: input.brand_color ?? null,
      industry: input.industry ?? null,
      contact_email: input.contact_email ?? null,
    });
    await this.changes.changed({ entity: 'client', op: 'created', id: c.id });
    return c;
  }

  async get(id: number): Promise<Client> {
    const c = await this.clients.get(id);
    if (!c) throw notFound('CLIENT_NOT_FOUND', 'client', id);
    return c;
  }

  /** Ordered by id; the cursor is the last id of the previous page. */
  async list(opts: { limit?: number; cursor?: string }): Promise<Page<Client>> {
    const limit = opts.limit ?? DEFAULT_PAGE_LIMIT;
    let afterId: number | undefined;
    if (opts.cursor !== undefined) {
      afterId = Number(Buffer.from(opts.cursor, 'base64url').toString('utf8'));
      if (!Number.isSafeInteger(afterId) || afterId < 0) {
        throw new AppError('INVALID_CURSOR', 'cursor is not one this API issued', { field: 'cursor' });
      }
    }
    const rows = await this.clients.list({ limit: limit + 1, afterId });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return {
      items,
      next_cursor: rows.length > limit && last ? Buffer.from(String(last.id)).toString('base64url') : null,
    };
  }

  async update(id: number, patch: Partial<ClientInput>): Promise<Client> {
    const c = await announcing(
      this.changes,
      () => this.clients.update(id, patch),
      () => [{ entity: 'client', op: 'updated', id }],
    );
    if (!c) throw notFound('CLIENT_NOT_FOUND', 'client', id);
    return c;
  }

  /** Deletes the client and, by cascade, its campaigns, contents and scripts. */
  async delete(id: number): Promise<void> {
    const deleted = await announcing(
      this.changes,
      () => this.clients.delete(id),
      () => [{ entity: 'client', op: 'deleted', id }],
    );
    if (!deleted) throw notFound('CLIENT_NOT_FOUND', 'client', id);
  }
}
