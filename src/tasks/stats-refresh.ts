/**
 * Keeps campaign roll-ups current without an operator: metrics ingested for a
 * campaign enqueue one stats.aggregate run of that campaign at the end of the
 * current window of `delayMs`. Every ingest of a window, from any process, maps to
 * the same idempotency key, so a burst of ingests costs one run; the run starts
 * after the window closes, so it covers them all.
 */
import type { ChangeFeed } from '../domain/changes.js';
import type { Jobs } from '../jobs/jobs.js';

export interface StatsRefreshOptions {
  /** Length of a window, ms (STATS_REFRESH_DELAY_MS): the longest a campaign's roll-ups wait after an ingest, plus the run. */
  delayMs: number;
  now?: () => number;
}

/** Subscribes to metric ingests; returns a function that unsubscribes. */
export function refreshStatsOnIngest(
  feed: ChangeFeed,
  jobs: Pick<Jobs, 'enqueue'>,
  opts: StatsRefreshOptions,
): () => void {
  const now = opts.now ?? Date.now;
  const window = Math.max(opts.delayMs, 1);
  return feed.subscribe(async (changes) => {
    const campaigns = new Set<number>();
    for (const c of changes)
      if (c.entity === 'metrics' && c.campaignId !== undefined) campaigns.add(c.campaignId);
    if (campaigns.size === 0) return;
    const t = now();
    const end = (Math.floor(t / window) + 1) * window;
    for (const campaignId of campaigns)
      await jobs.enqueue(
        'stats.aggregate',
        { campaign_id: campaignId },
        { delayMs: end - t, idempotencyKey: `stats.aggregate:campaign:${campaignId}:${end}` },
      );
  });
}
