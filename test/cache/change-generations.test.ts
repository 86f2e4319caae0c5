/**
 * The one subscriber: each domain change moves exactly the cached reads that depend on
 * what it changed, on every store (memory, Redis, Redis with L1). Each read below is
 * cached once; after a change, a read that recomputes was invalidated.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CacheService } from '../../src/cache/cache.service.js';
import { type Change, ChangeFeed } from '../../src/domain/changes.js';
import {
  campaignStatsDeps,
  changeFeedFor,
  costSummaryDeps,
  gens,
} from '../../src/domain-cache/generations.js';
import { redisUrl } from '../support/backends.js';
import { cacheKinds, cacheReady, makeCache, redisDb, silentLogger } from './helpers.js';

/** Cached reads as the services and routes declare them: campaign 1 holds content 10; campaign 2 is another. */
const READS: Record<string, readonly string[]> = {
  campaign_1: [gens.campaign(1), gens.cascade],
  campaign_2: [gens.campaign(2), gens.cascade],
  campaign_list: [gens.campaigns, gens.cascade],
  content_10: [gens.content(10), gens.cascade],
  content_list_1: [gens.campaign(1), gens.cascade],
  content_list_2: [gens.campaign(2), gens.cascade],
  script_10: [gens.content(10), gens.cascade],
  similar: [gens.similar],
  stats_1: campaignStatsDeps(1),
  stats_2: campaignStatsDeps(2),
  costs: costSummaryDeps,
};
const ALL = Object.keys(READS);
const CASCADED = ALL.filter((r) => READS[r]?.includes(gens.cascade));

const CASES: [string, Change, string[]][] = [
  ['client created', { entity: 'client', op: 'created', id: 1 }, []],
  ['client updated', { entity: 'client', op: 'updated', id: 1 }, []],
  ['client deleted', { entity: 'client', op: 'deleted', id: 1 }, [...CASCADED, 'similar']],
  [
    'campaign created',
    { entity: 'campaign', op: 'created', id: 1 },
    ['campaign_1', 'campaign_list', 'content_list_1'],
  ],
  [
    'campaign updated',
    { entity: 'campaign', op: 'updated', id: 1 },
    ['campaign_1', 'campaign_list', 'content_list_1', 'similar'],
  ],
  ['campaign deleted', { entity: 'campaign', op: 'deleted', id: 1 }, [...CASCADED, 'similar']],
  [
    'content created',
    { entity: 'content', op: 'created', id: 10, campaignId: 1 },
    ['campaign_1', 'content_10', 'content_list_1', 'script_10'],
  ],
  [
    'content updated',
    { entity: 'content', op: 'updated', id: 10, campaignId: 1 },
    ['campaign_1', 'content_10', 'content_list_1', 'script_10', 'similar'],
  ],
  [
    'content deleted',
    { entity: 'content', op: 'deleted', id: 10, campaignId: 1 },
    ['campaign_1', 'content_10', 'content_list_1', 'script_10', 'similar', 'costs'],
  ],
  [
    'content gone before its campaign was known',
    { entity: 'content', op: 'updated', id: 10, campaignId: undefined },
    ['content_10', 'script_10', 'similar'],
  ],
  [
    'script written',
    { entity: 'script', contentId: 10, campaignId: 1 },
    ['campaign_1', 'content_10', 'content_list_1', 'script_10', 'similar'],
  ],
  [
    'metrics ingested',
    { entity: 'metrics', contentId: 10, campaignId: 1 },
    ['campaign_1', 'content_10', 'content_list_1', 'script_10', 'similar', 'stats_1'],
  ],
  ["one campaign's roll-ups", { entity: 'campaign_stats', campaignId: 1 }, ['stats_1']],
  ["every campaign's roll-ups", { entity: 'campaign_stats', campaignId: null }, ['stats_1', 'stats_2']],
  ['vendor usage recorded', { entity: 'vendor_usage' }, ['costs']],
];

describe.each(cacheKinds())('domain changes to cache generations: %s', (kind) => {
  let cache: CacheService;
  let feed: ChangeFeed;
  let computed: Record<string, number> = {};

  const readAll = async () => {
    for (const name of ALL)
      await cache.getOrSet(
        'mapping',
        [name],
        async () => {
          computed[name] = (computed[name] ?? 0) + 1;
          return { name };
        },
        { deps: READS[name] },
      );
  };

  beforeAll(async () => {
    cache = makeCache(kind, redisDb(redisUrl(), 6));
    await cacheReady(cache);
    feed = changeFeedFor(silentLogger(), cache);
  });
  afterAll(async () => {
    await cache?.close();
  });
  beforeEach(async () => {
    await cache.flush();
    await readAll();
    computed = {};
  });

  it.each(CASES)('%s', async (_what, change, moved) => {
    await feed.changed(change);
    await readAll();
    expect(Object.keys(computed).sort()).toEqual([...new Set(moved)].sort());
  });

  it('applies several changes of one announcement together, each name once', async () => {
    await feed.changed(
      { entity: 'vendor_usage' },
      { entity: 'campaign_stats', campaignId: 2 },
      { entity: 'vendor_usage' },
    );
    await readAll();
    expect(Object.keys(computed).sort()).toEqual(['costs', 'stats_2']);
  });
});

describe('the change feed', () => {
  it('keeps a failing subscriber from failing the write, and logs it with the error', async () => {
    const warnings: unknown[] = [];
    const feed = new ChangeFeed({ warn: (obj: unknown) => warnings.push(obj) } as never);
    const seen: Change[] = [];
    feed.subscribe(async () => {
      throw new Error('subscriber down');
    });
    feed.subscribe(async (changes) => {
      seen.push(...changes);
    });
    await expect(feed.changed({ entity: 'vendor_usage' })).resolves.toBeUndefined();
    expect(seen).toEqual([{ entity: 'vendor_usage' }]);
    expect(warnings).toMatchObject([{ err: { message: 'subscriber down' } }]);
  });

  it('stops calling a subscriber that unsubscribed', async () => {
    const feed = new ChangeFeed(silentLogger());
    let calls = 0;
    const off = feed.subscribe(async () => {
      calls++;
    });
    await feed.changed({ entity: 'vendor_usage' });
    off();
    await feed.changed({ entity: 'vendor_usage' });
    expect(calls).toBe(1);
  });
});
