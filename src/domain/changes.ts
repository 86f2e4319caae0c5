import type { Logger } from 'pino';

/**
 * What a write changed, as the domain says it. Every write path that changes data a
 * reader may hold a copy of announces one of these after it wrote (also when it failed
 * part-way: announcing too much is harmless). Subscribers decide what follows; the
 * cache's generations are one of them (src/domain-cache/generations.ts).
 *
 * `campaignId` is the content's campaign when the writer knows it (undefined when the
 * content was already gone).
 */
export type Change =
  | { readonly entity: 'client'; readonly op: ChangeOp; readonly id: number }
  | { readonly entity: 'campaign'; readonly op: ChangeOp; readonly id: number }
  | {
      readonly entity: 'content';
      readonly op: ChangeOp;
      readonly id: number;
      readonly campaignId: number | undefined;
    }
  /** A content's script blocks (replace, block update, reorder). */
  | { readonly entity: 'script'; readonly contentId: number; readonly campaignId: number | undefined }
  /** Metric snapshots ingested for a content (its latest score moved). */
  | { readonly entity: 'metrics'; readonly contentId: number; readonly campaignId: number | undefined }
  /** Roll-ups recomputed: one campaign's, or every campaign's (null). */
  | { readonly entity: 'campaign_stats'; readonly campaignId: number | null }
  /** Vendor calls recorded (ai_api_usage): spend summaries moved. */
  | { readonly entity: 'vendor_usage' };

export type ChangeOp = 'created' | 'updated' | 'deleted';

/**
 * How a writer announces its changes. Required by every service and repository that
 * writes announced data, so a write cannot be wired without one. Resolves once every
 * subscriber has applied the changes (a reader in this process then sees them);
 * never rejects: a failing subscriber is logged by the feed.
 */
export interface ChangeNotifier {
  changed(...changes: Change[]): Promise<void>;
}

/** A subscriber: applies changes (e.g. bumps cache generations). May reject; the feed logs it. */
export type ChangeListener = (changes: readonly Change[]) => Promise<void>;

/** The process's change notifier: hands each announcement to every subscriber, in order of subscription. */
export class ChangeFeed implements ChangeNotifier {
  private readonly listeners: ChangeListener[] = [];

  constructor(private readonly logger: Pick<Logger, 'warn'>) {}

  /** Adds a subscriber; returns a function that removes it. */
  subscribe(listener: ChangeListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  async changed(...changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    for (const listener of this.listeners) {
      try {
        await listener(changes);
      } catch (err) {
        // The write itself succeeded; a subscriber that could not follow must not fail it.
        this.logger.warn({ err, changes }, 'a change subscriber failed');
      }
    }
  }
}

/** Runs a write, then announces what it changed, also when the write failed part-way. */
export async function announcing<T>(
  changes: ChangeNotifier,
  write: () => Promise<T>,
  what: () => Change[],
): Promise<T> {
  try {
    return await write();
  } finally {
    await changes.changed(...what());
  }
}
