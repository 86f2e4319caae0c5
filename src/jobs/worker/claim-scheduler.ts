/**
 * Claim scheduling and prefetch: the worker's loop. It keeps `concurrency` slots busy, claims in strict
 * priority order (one claim fills every free slot, plus `prefetch` jobs held ahead), keeps one slot for
 * high_priority when the worker serves it with 2+ slots, and starts held jobs without a claim only while
 * nothing could outrank them. Every claim carries the outcomes waiting in the settlement batch.
 */
import type { Logger } from 'pino';
import {
  type ClaimedJob,
  type JobLeasing,
  QUEUE_PRIORITY,
  type QueueName,
  type Settlement,
} from '../types.js';
import { LazyAbort } from './lazy-abort.js';
import type { SettlementBatch } from './settlement-batch.js';

export interface Running {
  job: ClaimedJob;
  ac: LazyAbort;
  done: Promise<void>;
}

export interface ClaimSchedulerOptions {
  leasing: JobLeasing;
  batch: SettlementBatch;
  /** Runs one attempt and says how to settle it (undefined: nothing to settle). */
  execute: (job: ClaimedJob, ac: LazyAbort) => Promise<Settlement | undefined>;
  logger: Logger;
  workerId: string;
  /** In claim order. */
  queues: readonly QueueName[];
  concurrency: number;
  prefetch: number;
  idleWaitMs: number;
  /** Aborted when the worker stops. */
  stop: AbortSignal;
}

const RESOLVED = Promise.resolve();

interface WorkWait {
  queues: readonly QueueName[];
  ac: AbortController;
}
/** How long a job runs before a claim carries its start note (the settlement batch's flush notes it within 5 ms). */
const START_NOTE_AFTER_MS = 2;
/** The queues the reserved slot may take (one array: the backend may cache what it computes per queue list). */
const HIGH_ONLY: readonly QueueName[] = ['high_priority'];

/** Claim order: queue rank, then job priority, then FIFO (negative: `a` runs first). */
export const byRank = (a: ClaimedJob, b: ClaimedJob) =>
  QUEUE_PRIORITY[b.queue] - QUEUE_PRIORITY[a.queue] || b.priority - a.priority || a.enqueuedAt - b.enqueuedAt;

/**
 * `sorted` (in claim order) with `extra` inserted in claim order: the same array as a stable sort of
 * both (an inserted job goes after the jobs it ties with), with a binary search per inserted job.
 */
function withRanked(sorted: readonly ClaimedJob[], extra: ClaimedJob[]): ClaimedJob[] {
  const out = sorted.slice();
  for (const job of extra.length > 1 ? extra.sort(byRank) : extra) {
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byRank(out[mid] as ClaimedJob, job) <= 0) lo = mid + 1;
      else hi = mid;
    }
    out.splice(lo, 0, job);
  }
  return out;
}

export class ClaimScheduler {
  readonly running = new Map<string, Running>();
  /** Running jobs not from high_priority (the reserved slot's bookkeeping, without a scan per loop). */
  private runningNonHigh = 0;
  /** Prefetched jobs, always in claim order (byRank). */
  buffer: ClaimedJob[] = [];
  private claimVersion: string | undefined;
  private claimedAt = 0;
  /** The worst-ranked job of the last claim (none: nothing else was ready). */
  private claimFloor: ClaimedJob | undefined;
  /** Counts freed slots, so the loop notices one that freed while it was busy claiming. */
  private slotEpoch = 0;
  /** The loop waiting for a freed slot or the end of a claim round (one promise, not event listeners, per wait). */
  private loopWaiter: (() => void) | undefined;
  /** Claims the loop may keep in flight (the backend's `claimsInFlight`), and the slots each may fill. */
  private readonly maxRounds: number;
  private readonly roundSlots: number;
  /** Claim rounds in flight, and the free slots, reserved-slot share and prefetch room they were promised. */
  readonly rounds = new Set<Promise<boolean>>();
  private readonly reserved = { slots: 0, nonHigh: 0, room: 0 };
  /** A concurrent round found nothing to start and none other was in flight: the loop may wait for work. */
  private idle = false;
  /** The slot epoch when that round began: a slot freed since then means there is no waiting to do. */
  private idleEpoch = 0;
  /** The backend wait in progress (see waitForWork), and the queues it watches. */
  private workWait: WorkWait | undefined;
  /** Backend waits that ended (work may have become ready): counted, so a claim knows whether one ended meanwhile. */
  private wakeEpoch = 0;
  /**
   * A claim found high_priority empty and no backend wait has ended since (see the loop's reserved-slot
   * wait with claims in flight). Only kept for a worker that serves high_priority.
   */
  private highEmpty = false;
  private readonly nonHighCap: number;

  constructor(private readonly o: ClaimSchedulerOptions) {
    this.maxRounds = Math.max(1, Math.min(o.concurrency, o.leasing.claimsInFlight ?? 1));
    this.roundSlots = Math.ceil(o.concurrency / this.maxRounds);
    // Slots non-high jobs may use: all but one when this worker serves high_priority and has 2+ slots.
    this.nonHighCap =
      o.queues.includes('high_priority') && o.concurrency > 1 ? o.concurrency - 1 : o.concurrency;
  }

  /** Held jobs: running, prefetched, and finished ones whose outcome is not committed yet. */
  heldJobs(): ClaimedJob[] {
    return [...[...this.running.values()].map((r) => r.job), ...this.buffer, ...this.o.batch.jobs()];
  }

  /** A held (prefetched) job is no longer this worker's: forget it without settling it. */
  dropHeld(id: string): void {
    this.buffer = this.buffer.filter((j) => j.id !== id);
  }

  /** Resolves when a slot frees or a concurrent claim round ends. */
  private slotFreed(): Promise<void> {
    return new Promise((resolve) => (this.loopWaiter = resolve));
  }

  private wakeLoop(): void {
    const w = this.loopWaiter;
    this.loopWaiter = undefined;
    w?.();
  }

  /** A slot freed (or the worker stops): wakes the loop. */
  freeSlot(): void {
    this.slotEpoch++;
    this.wakeLoop();
  }

  async loop(): Promise<void> {
    const { batch, stop } = this.o;
    let lastYield = performance.now();
    while (!stop.aborted) {
      // Claims and no-op tasks can settle in microtasks alone: yield to the event loop now and then, so
      // timers (heartbeats, the API in `omnivibe start`) are never starved by a busy worker.
      if (performance.now() - lastYield > 5) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
      if (this.idle) {
        this.idle = false;
        await this.waitForWork(this.idleEpoch);
        continue;
      }
      // Slots promised to claims in flight are not free.
      const free = this.o.concurrency - this.running.size - this.reserved.slots;
      const nonHighFree = Math.max(0, this.nonHighCap - this.runningNonHigh - this.reserved.nonHigh);
      if (free <= 0 || this.rounds.size >= this.maxRounds) {
        if (this.maxRounds > 1) {
          // Claims in flight: the next one goes out as soon as a slot frees (it rides on that job's
          // outcome), not at the end of the turn, so Redis runs it while this process handles the rest.
          // An outcome waiting for a slot is committed within a few ms without one.
          if (free <= 0 && batch.size > 0) batch.flushSoon();
          await this.slotFreed();
          continue;
        }
        if (batch.size === 0) await this.slotFreed();
        // Let the other slots that free in this tick join the same claim.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      // Prefetched jobs may start without a claim only while nothing could outrank them: no work became
      // ready anywhere since the last claim (the backend's version token) and that claim is recent
      // (bounds the wait of a delayed job that came due meanwhile). Settlements wait a few ms at most.
      if (
        this.buffer.length > 0 &&
        this.rounds.size === 0 &&
        this.claimVersion !== undefined &&
        performance.now() - this.claimedAt < 20 &&
        batch.size < 256 &&
        // Last: the backend's check may cost a statement.
        this.o.leasing.version?.() === this.claimVersion
      ) {
        // Only jobs ranking at least with the worst job of the last claim: anything still waiting ranks below that.
        const floor = this.claimFloor;
        const safe = floor ? this.buffer.filter((j) => byRank(j, floor) <= 0) : this.buffer;
        const { started, keep } = this.startBest(safe, free, nonHighFree);
        if (started > 0) {
          this.buffer = [...keep, ...this.buffer.filter((j) => !safe.includes(j))];
          batch.flushSoon();
          continue;
        }
      }
      // Claims in flight (BullMQ): only the reserved slot is free and a claim found high_priority empty with
      // no wake-up since. Every claim for another slot asks high_priority first anyway, and the wait (BullMQ:
      // a blocking pop on the queue's marker, which an enqueue from any process sets) ends when high_priority
      // work arrives: a claim now could only find nothing again, one empty lease per finished job.
      if (this.maxRounds > 1 && nonHighFree === 0 && this.highEmpty) {
        if (batch.size > 0) batch.flushSoon();
        await this.waitForWork(this.slotEpoch);
        continue;
      }
      // Only the reserved slot is free and nothing became ready since the last claim (at most 20 ms ago): a
      // claim could only find high_priority work, and there was none. Wait for a slot or new work instead of claiming again
      // (a three-queue worker would otherwise claim once per finished job, and wait on a timer each time).
      if (
        nonHighFree === 0 &&
        this.rounds.size === 0 &&
        this.claimVersion !== undefined &&
        performance.now() - this.claimedAt < 20 &&
        this.o.leasing.version?.() === this.claimVersion
      ) {
        // Outcomes waiting meanwhile are committed within a few ms (or by the next claim).
        if (batch.size > 0) batch.flushSoon();
        await this.waitForWork(this.slotEpoch);
        continue;
      }
      const epoch = this.slotEpoch;
      const slots = Math.min(free, this.roundSlots);
      const round = this.claimRound(slots, Math.min(nonHighFree, slots));
      if (this.maxRounds === 1) {
        // Nothing ready (or only work our free slots may not take): wait for an enqueue, a freed slot or a poll.
        if (await round) await this.waitForWork(epoch);
        continue;
      }
      // Several claims in flight (a backend behind a network): this claim's round trip overlaps the other
      // rounds' jobs. Each round fills only the slots it was promised; the loop looks for more free slots.
      const ended = (idle: boolean) => {
        this.rounds.delete(tracked);
        if (idle && this.rounds.size === 0) {
          this.idle = true;
          this.idleEpoch = epoch;
        }
        this.wakeLoop();
        return idle;
      };
      const tracked: Promise<boolean> = round.then(ended, (err: unknown) => {
        this.o.logger.error({ err, worker: this.o.workerId }, 'claim round failed');
        return ended(false);
      });
      this.rounds.add(tracked);
    }
  }

  /**
   * One claim: commits the pending settlements, leases jobs for up to `free` slots (of which
   * `nonHighFree` may take jobs from queues other than high_priority) plus the prefetch room, and starts
   * the best of them and the held jobs. Resolves true when nothing could start and nothing changed
   * meanwhile (the loop may wait for work).
   */
  private async claimRound(free: number, nonHighFree: number): Promise<boolean> {
    const { batch, leasing } = this.o;
    const epoch = this.slotEpoch;
    // With several rounds in flight, each carries at most one settlement per slot it fills: a backend that
    // completes a job and leases the next in one call (BullMQ) then needs no separate fetch.
    const settle = batch.take(this.maxRounds > 1 ? free : undefined);
    // Jobs started 2 ms ago or more: a no-op task ends before that (see takeStarts).
    const starts = batch.takeStarts(Date.now() - START_NOTE_AFTER_MS);
    // With several rounds in flight, each is promised at most as much room as it has slots (its
    // settlements' fetched jobs), so every round has some while the buffer has room.
    const room = Math.min(
      this.maxRounds > 1 ? free : Infinity,
      Math.max(0, this.o.prefetch - this.buffer.length - this.reserved.room),
    );
    const promise = { slots: free, nonHigh: nonHighFree, room };
    this.reserve(promise, 1);
    let claimed: ClaimedJob[];
    const wakes = this.wakeEpoch;
    // Claims in flight (BullMQ): high_priority was found empty and the wait watching it has not ended, so
    // nothing was added there (an enqueue from any process ends that wait, or another worker's, which then
    // claims it): the claim need not ask it again.
    const skipHigh = this.maxRounds > 1 && this.highEmpty && this.workWait !== undefined;
    try {
      const version = leasing.version?.();
      claimed = await leasing.claim({
        ...(skipHigh ? { emptyQueues: HIGH_ONLY } : {}),
        settle,
        ...(starts ? { started: starts } : {}),
        queues: this.o.queues,
        max: free + room,
        maxNonHigh: nonHighFree + room,
        room,
        workerId: this.o.workerId,
      });
      this.claimVersion = version;
      this.claimedAt = performance.now();
      // The last of the claim in claim order (a stable sort's last element).
      this.claimFloor = claimed.length
        ? claimed.reduce((worst, j) => (byRank(j, worst) >= 0 ? j : worst))
        : undefined;
      batch.committed(settle);
      // A claim that asked high_priority for every free slot and found none (with no wake-up meanwhile)
      // found it empty; one that skipped it leaves that as it was.
      if (this.nonHighCap < this.o.concurrency) {
        if (wakes !== this.wakeEpoch || claimed.some((j) => j.queue === 'high_priority'))
          this.highEmpty = false;
        else if (!skipHigh) this.highEmpty = true;
        // Keep a wait on high_priority in progress while it is taken for empty (it ends when work comes).
        if (this.highEmpty && this.maxRounds > 1 && !this.workWait) this.watch(HIGH_ONLY);
      }
    } catch (err) {
      this.reserve(promise, -1);
      batch.putBack(settle);
      batch.putBackStarts(starts);
      this.o.logger.error({ err, worker: this.o.workerId }, 'claim failed; retrying shortly');
      await this.sleep(500);
      return false;
    }
    this.reserve(promise, -1);
    // The buffer is in claim order: the claimed jobs are inserted into it rather than sorted with it.
    const { started, keep } = this.startBest(withRanked(this.buffer, claimed), free, nonHighFree, true);
    this.buffer = keep;
    if (keep.length > this.o.prefetch) {
      this.buffer = keep.slice(0, this.o.prefetch);
      for (const job of keep.slice(this.o.prefetch)) await this.giveBack(job);
    }
    // A slot freed (or a settlement arrived) while we were claiming: look again instead of waiting.
    // (Jobs claimed but not startable, e.g. only the reserved slot is free, wait in the buffer.)
    return started === 0 && batch.size === 0 && this.slotEpoch === epoch;
  }

  private reserve(p: { slots: number; nonHigh: number; room: number }, sign: 1 | -1): void {
    this.reserved.slots += sign * p.slots;
    this.reserved.nonHigh += sign * p.nonHigh;
    this.reserved.room += sign * p.room;
  }

  /**
   * Waits for an enqueue, a freed slot, a stop or the idle poll. `epoch`: the slot epoch when the loop last
   * looked; a slot freed since then (its event already fired) ends the wait before it begins.
   *
   * The backend's wait outlives a freed slot: a three-queue worker whose reserved slot is its only free one
   * waits here once per finished job, and setting up a backend wait (timers, listeners, a poll) each time
   * cost more than the no-op task. It is replaced only when the queues to watch change, and ends with work,
   * its timeout (the idle poll) or the worker's stop.
   */
  private async waitForWork(epoch: number): Promise<void> {
    if (this.slotEpoch !== epoch || this.o.stop.aborted) return;
    // Only the reserved slot is free: only high_priority work can use it.
    const nonHighFree = this.nonHighCap - this.runningNonHigh - this.reserved.nonHigh;
    this.watch(nonHighFree <= 0 ? HIGH_ONLY : this.o.queues);
    await this.slotFreed();
  }

  /** Starts a backend wait for work on `queues`, unless one for them is in progress; its end wakes the loop. */
  private watch(queues: readonly QueueName[]): void {
    if (this.workWait?.queues !== queues) {
      this.workWait?.ac.abort();
      const wait: WorkWait = { queues, ac: new AbortController() };
      this.workWait = wait;
      // A wait that ends while the loop is busy wakes nothing: the loop's next wait is a new one, and a
      // backend's new wait ends at once when work is already there.
      void this.o.leasing
        .waitForWork(queues, this.o.idleWaitMs, AbortSignal.any([wait.ac.signal, this.o.stop]))
        .then(() => {
          if (this.workWait === wait) this.workWait = undefined;
          this.wakeEpoch++;
          this.highEmpty = false;
          this.wakeLoop();
        });
    }
  }

  /** Starts the best jobs in priority order within the free slots (the reserved slot only for high_priority). */
  private startBest(
    jobs: ClaimedJob[],
    free: number,
    nonHighFree: number,
    inOrder = false,
  ): { started: number; keep: ClaimedJob[] } {
    const candidates = inOrder ? jobs : jobs.sort(byRank);
    const keep: ClaimedJob[] = [];
    let started = 0;
    let startedNonHigh = 0;
    for (const job of candidates) {
      const isHigh = job.queue === 'high_priority';
      if (started < free && (isHigh || startedNonHigh < nonHighFree)) {
        started++;
        if (!isHigh) startedNonHigh++;
        this.run(job);
      } else keep.push(job);
    }
    return { started, keep };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.o.stop.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  /** Returns a leased job to its queue without counting the attempt. */
  async giveBack(job: ClaimedJob): Promise<void> {
    try {
      await this.o.leasing.release(job, this.o.workerId);
    } catch (err) {
      this.o.logger.warn(
        { err, jobId: job.id },
        'could not return a job to its queue; its lease will expire',
      );
    }
  }

  private run(job: ClaimedJob): void {
    const ac = new LazyAbort();
    const entry: Running = { job, ac, done: RESOLVED };
    const nonHigh = job.queue !== 'high_priority';
    this.running.set(job.id, entry);
    if (nonHigh) this.runningNonHigh++;
    const finished = () => {
      this.running.delete(job.id);
      if (nonHigh) this.runningNonHigh--;
    };
    entry.done = this.o
      .execute(job, ac)
      .then((st) => {
        finished();
        // The settlement rides on the loop's next claim; while it waits the heartbeat still covers it.
        const committed = st ? this.o.batch.submit(st) : undefined;
        this.freeSlot();
        return committed;
      })
      .catch((err: unknown) => {
        finished();
        this.freeSlot();
        this.o.logger.error({ err, jobId: job.id }, 'settling a job failed; its lease will expire');
      });
  }
}
