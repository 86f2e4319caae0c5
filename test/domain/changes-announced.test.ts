/**
 * Every write of a domain service announces what it changed, on both databases. The
 * test lists each service's methods from its prototype: a method that is neither a
 * known read nor exercised here as a write fails the test until it is classified, so a
 * new write cannot silently skip the announcement.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { createRepos } from '../../src/db/repos.js';
import { CampaignsService } from '../../src/domain/campaigns.service.js';
import type { Change, ChangeNotifier } from '../../src/domain/changes.js';
import { ClientsService } from '../../src/domain/clients.service.js';
import { ContentsService } from '../../src/domain/contents.service.js';
import { MetricsService } from '../../src/domain/metrics.service.js';
import { ScriptsService } from '../../src/domain/scripts.service.js';
import { createDomainServices, type DomainServices } from '../../src/domain/services.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';

/** Methods that only read, and private helpers (they run inside the public methods). */
const NOT_WRITES = new Set([
  'constructor',
  'get',
  'list',
  'row',
  'similar',
  'series',
  'latest',
  'requireContent',
  'scriptWrite',
]);

/** The writes the first test exercises. */
const WRITES = [
  'clients.create',
  'clients.update',
  'clients.delete',
  'campaigns.create',
  'campaigns.update',
  'campaigns.delete',
  'contents.create',
  'contents.update',
  'contents.delete',
  'scripts.replace',
  'scripts.updateBlock',
  'scripts.reorder',
  'metrics.ingest',
];

const CLASSES = {
  clients: ClientsService,
  campaigns: CampaignsService,
  contents: ContentsService,
  scripts: ScriptsService,
  metrics: MetricsService,
};

describe.each(dbBackends())('domain writes announce their changes (%s)', (backend) => {
  let handle: DatabaseHandle;
  let s: DomainServices;
  const heard: Change[] = [];
  const notifier: ChangeNotifier = {
    async changed(...changes) {
      heard.push(...changes);
    },
  };
  /** Runs a write and returns what it announced. */
  const announced = async (write: () => Promise<unknown>) => {
    heard.length = 0;
    await write();
    return [...heard];
  };
  const exercised = new Set<string>();

  beforeAll(async () => {
    const config = await freshDatabaseConfig(backend);
    handle = openDatabase(config);
    await migrateToLatest(handle.db, config);
    s = createDomainServices(createRepos(handle.db, handle.dialect), notifier);
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('every write, with the ids it touched', async () => {
    const mark = (name: string) => exercised.add(name);
    mark('clients.create');
    const [clientCreated] = await announced(() => s.clients.create({ name: 'c' }));
    expect(clientCreated).toMatchObject({ entity: 'client', op: 'created' });
    const clientId = (clientCreated as { id: number }).id;
    mark('clients.update');
    expect(await announced(() => s.clients.update(clientId, { name: 'd' }))).toEqual([
      { entity: 'client', op: 'updated', id: clientId },
    ]);

    mark('campaigns.create');
    heard.length = 0;
    const campaign = await s.campaigns.create({ client_id: clientId, name: 'x', platform: 'youtube' });
    expect(heard).toEqual([{ entity: 'campaign', op: 'created', id: campaign.id }]);
    mark('campaigns.update');
    expect(await announced(() => s.campaigns.update(campaign.id, { name: 'y' }))).toEqual([
      { entity: 'campaign', op: 'updated', id: campaign.id },
    ]);

    mark('contents.create');
    heard.length = 0;
    const content = await s.contents.create(campaign.id, { title: 't' });
    expect(heard).toEqual([{ entity: 'content', op: 'created', id: content.id, campaignId: campaign.id }]);
    mark('contents.update');
    expect(await announced(() => s.contents.update(content.id, { title: 'u' }))).toEqual([
      { entity: 'content', op: 'updated', id: content.id, campaignId: campaign.id },
    ]);

    const script = { entity: 'script', contentId: content.id, campaignId: campaign.id };
    mark('scripts.replace');
    let blocks: { id: number }[] = [];
    expect(
      await announced(async () => {
        blocks = (
          await s.scripts.replace(content.id, [
            { kind: 'hook', text: 'a' },
            { kind: 'cta', text: 'b' },
          ])
        ).blocks;
      }),
    ).toEqual([script]);
    mark('scripts.updateBlock');
    expect(await announced(() => s.scripts.updateBlock(content.id, blocks[0]!.id, { text: 'c' }))).toEqual([
      script,
    ]);
    mark('scripts.reorder');
    expect(await announced(() => s.scripts.reorder(content.id, [blocks[1]!.id, blocks[0]!.id]))).toEqual([
      script,
    ]);

    mark('metrics.ingest');
    expect(
      await announced(() =>
        s.metrics.ingest(content.id, [
          { recorded_at: '2026-01-01T00:00:00Z', views: 10, likes: 1, comments: 0, shares: 0 },
        ]),
      ),
    ).toEqual([{ entity: 'metrics', contentId: content.id, campaignId: campaign.id }]);

    mark('contents.delete');
    expect(await announced(() => s.contents.delete(content.id))).toEqual([
      { entity: 'content', op: 'deleted', id: content.id, campaignId: campaign.id },
    ]);
    mark('campaigns.delete');
    expect(await announced(() => s.campaigns.delete(campaign.id))).toEqual([
      { entity: 'campaign', op: 'deleted', id: campaign.id },
    ]);
    mark('clients.delete');
    expect(await announced(() => s.clients.delete(clientId))).toEqual([
      { entity: 'client', op: 'deleted', id: clientId },
    ]);
    expect([...exercised].sort()).toEqual([...WRITES].sort());
  });

  it('a write that found nothing still announces (announcing too much is harmless) and still fails', async () => {
    await expect(announced(() => s.campaigns.delete(999_999))).rejects.toMatchObject({
      code: 'CAMPAIGN_NOT_FOUND',
    });
    expect(heard).toEqual([{ entity: 'campaign', op: 'deleted', id: 999_999 }]);
  });

  it('no method of a service is left unclassified', () => {
    const writes: string[] = [];
    for (const [service, cls] of Object.entries(CLASSES))
      for (const m of Object.getOwnPropertyNames(cls.prototype))
        if (!NOT_WRITES.has(m)) writes.push(`${service}.${m}`);
    expect(writes.sort()).toEqual([...WRITES].sort());
  });
});
