/**
 * Everything the BullMQ adapter knows of BullMQ's internals (6.7), in one place. Each use is a shortcut
 * with a fallback through BullMQ's public API, probed when the adapter is made (`probeBullmqInternals`)
 * and turned off by its own env variable (see shortcuts.ts):
 *
 * - `bullmq_complete`: a completion runs BullMQ's moveToFinished script with arguments from a template its
 *   backend builds once per queue, worker and attempts (the job's id, the time, the result and the fetch
 *   flag filled in), instead of packing the same options with msgpack for every job. Fallback: the
 *   backend's moveToCompleted.
 * - `bullmq_redrive`: a job that stalled past the limit is "dead" but still listed as waiting (BullMQ
 *   fails it when next claimed); a redrive clears its deferred failure (`defa`), stall count (`stc`) and
 *   attempts (`atm`) hash fields in place. Fallback: the job is removed and enqueued again.
 * - `bullmq_stalled`: each worker runs BullMQ's moveStalledJobsToWait script itself, in one MULTI after a
 *   script of ours that records the attempts that script is about to return (their rows, read from the
 *   jobs' hashes before anyone can claim them again). Fallback: BullMQ's own stalled-check timer, the
 *   rows read from the jobs afterwards.
 * - `bullmq_markers`: an idle worker blocks on the queues' marker keys (BZPOPMIN; a member's score is when
 *   a delayed job comes due, 0 for now) instead of polling. Fallback: poll every JOBS_POLL_MS.
 *
 * What the adapter uses otherwise is BullMQ's API: job keys from `toKey`, lock renewal through the
 * backend's token-checked extendLocks (as its own workers renew), dead jobs failed with our own reason.
 */
import {
  type JobJson,
  type MinimalJob,
  type Queue,
  raw2NextJobData,
  type Worker as BullWorker,
} from 'bullmq';
import type { KeepJobs } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Shortcuts } from '../shortcuts.js';

/** The next-job tuple of BullMQ's moveToActive and moveToFinished scripts, decoded by its backend. */
export type NextJobData =
  [JobJson | null | undefined, string | undefined, ...unknown[]] | [] | void | undefined;

/**
 * A completion's arguments to BullMQ's moveToFinished script as its backend builds them for one queue,
 * worker and attempts: keys, then the job's id, the time, 'returnvalue', the result, 'completed', fetch
 * next, the key prefix, the packed options (the same for every such job) and the fields to update.
 */
interface FinishTemplate {
  args: Array<string | number | boolean | Buffer | undefined>;
  /** Index of the job id: the number of keys. */
  at: number;
}

/** Job options that change a completion's packed options: such jobs complete through the backend's own path. */
const ownFinishOptions = (o: JobJson['opts']) =>
  o.removeOnComplete !== undefined ||
  o.failParentOnFailure !== undefined ||
  o.continueParentOnFailure !== undefined ||
  o.ignoreDependencyOnFailure !== undefined ||
  o.removeDependencyOnFailure !== undefined;

type AnyQueue = Queue<unknown, unknown, string>;
type AnyWorker = BullWorker<unknown, unknown, string>;

/** The layout check of a template built for job id `probe` (undefined: as expected). */
function templateFinding(args: FinishTemplate['args'], at: number, probeKey: string): string | undefined {
  const expected =
    args.length === at + 9 &&
    args[11] === probeKey &&
    args[at] === 'probe' &&
    args[at + 2] === 'returnvalue' &&
    args[at + 3] === 'null' &&
    args[at + 4] === 'completed' &&
    (args[at + 5] === 0 || args[at + 5] === 1) &&
    Buffer.isBuffer(args[at + 7]) &&
    args[at + 8] === undefined;
  return expected ? undefined : "BullMQ's moveToFinished arguments are not laid out as expected";
}

/**
 * Probes every BullMQ shortcut against `queue` (no Redis round trip): the completion arguments' layout,
 * the hash fields a job decodes from, and the marker key. Called when the adapter is made.
 */
export function probeBullmqInternals(shortcuts: Shortcuts, queue: AnyQueue, keep: KeepJobs): void {
  shortcuts.probe('bullmq_complete', () => {
    const backend = queue.getBackend();
    const args = backend.moveToCompletedArgs(
      { id: 'probe', opts: {} } as MinimalJob,
      'null',
      keep,
      'probe',
      true,
    );
    return templateFinding(args, backend.moveToFinishedKeys.length, queue.toKey('probe')) ?? true;
  });
  shortcuts.probe('bullmq_redrive', () => {
    const decoded = (
      raw2NextJobData([
        ['id', 'probe', 'name', 'n', 'timestamp', '1', 'defa', 'why', 'stc', '3', 'atm', '2'],
        'probe',
      ]) as NextJobData
    )?.[0];
    return decoded?.deferredFailure === 'why' && decoded.stalledCounter === 3 && decoded.attemptsMade === 2
      ? true
      : "BullMQ's job hash fields defa, stc and atm do not decode as deferredFailure, stalledCounter and attemptsMade";
  });
  shortcuts.probe('bullmq_stalled', () => stalledFinding(queue) ?? true);
  shortcuts.probe('bullmq_markers', () =>
    queue.keys.marker === queue.toKey('marker') ? true : "BullMQ's marker key is not <queue key>:marker",
  );
}

/** Completions through BullMQ's moveToFinished script from per-queue, worker and attempts templates. */
export class FinishShortcut {
  private readonly templates = new Map<string, FinishTemplate | null>();
  /** The last one used: a worker completes jobs of one queue and one attempts setting in a row. */
  private last: { queue: string; workerId: string; attempts: unknown; t: FinishTemplate | null } | undefined;

  constructor(
    private readonly shortcuts: Shortcuts,
    private readonly keep: KeepJobs,
  ) {}

  /**
   * Completes `bullId` (leased by `workerId`) and returns the next-job tuple, or undefined when the job
   * must complete through the backend's own path (the shortcut is off, or the job has options of its own).
   */
  async complete(
    w: AnyWorker,
    queue: string,
    bullId: string,
    opts: JobJson['opts'],
    workerId: string,
    result: unknown,
    fetchNext: boolean,
  ): Promise<{ next: NextJobData } | undefined> {
    const template = this.template(w, queue, opts, workerId);
    this.shortcuts.count('bullmq_complete', template !== undefined);
    if (!template) return undefined;
    const backend = w.getBackend();
    const args = template.args.slice();
    args[11] = w.toKey(bullId);
    args[template.at] = bullId;
    args[template.at + 1] = Date.now();
    args[template.at + 3] = JSON.stringify(result ?? null);
    args[template.at + 5] = fetchNext && !w.closing ? 1 : 0;
    const code = (await backend.execCommand(await backend.client, 'moveToFinished', args)) as unknown;
    if (typeof code === 'number' && code < 0)
      throw backend.finishedErrors({ code, jobId: bullId, command: 'moveToFinished', state: 'active' });
    return { next: code === undefined ? undefined : (raw2NextJobData(code as unknown[]) as NextJobData) };
  }

  private template(
    w: AnyWorker,
    queue: string,
    opts: JobJson['opts'],
    workerId: string,
  ): FinishTemplate | undefined {
    if (!this.shortcuts.usable('bullmq_complete') || ownFinishOptions(opts)) return undefined;
    const last = this.last;
    if (last && last.queue === queue && last.workerId === workerId && last.attempts === opts.attempts)
      return last.t ?? undefined;
    const key = `${queue}\n${workerId}\n${opts.attempts}`;
    let t = this.templates.get(key);
    if (t === undefined) {
      const backend = w.getBackend();
      const probe: Pick<MinimalJob, 'id' | 'opts'> = {
        id: 'probe',
        opts: opts.attempts === undefined ? {} : { attempts: opts.attempts },
      };
      const args = backend.moveToCompletedArgs(probe as MinimalJob, 'null', this.keep, workerId, true);
      const at = backend.moveToFinishedKeys.length;
      t = templateFinding(args, at, w.toKey('probe')) === undefined ? { args, at } : null;
      this.templates.set(key, t);
    }
    this.last = { queue, workerId, attempts: opts.attempts, t };
    return t ?? undefined;
  }
}

/**
 * Redrives a dead job still listed as waiting by clearing its deferred failure, stall count and attempts
 * in place. Returns false when the shortcut is off (the caller removes and re-adds the job).
 */
export async function redriveDeadInPlace(
  shortcuts: Shortcuts,
  conn: Redis,
  queue: AnyQueue,
  bullId: string,
): Promise<boolean> {
  const fast = shortcuts.usable('bullmq_redrive');
  shortcuts.count('bullmq_redrive', fast);
  if (!fast) return false;
  const key = queue.toKey(bullId);
  await conn.multi().hdel(key, 'defa').hset(key, 'stc', 0, 'atm', 0).exec();
  return true;
}

/** The marker keys to block on for `queues` (undefined: the shortcut is off, poll instead). */
export function markerKeys(shortcuts: Shortcuts, queues: readonly AnyQueue[]): string[] | undefined {
  return shortcuts.usable('bullmq_markers') ? queues.map((q) => q.keys.marker as string) : undefined;
}

/** When a popped marker's work is due, epoch ms (0: now). BZPOPMIN returns [key, member, score]. */
export const markerDueAt = (popped: [string, string, string]): number => Number(popped[2]);

/**
 * Before BullMQ's stalled check moves a job back, the lost attempt's row: read from the job's hash and
 * added to the pending rows (as bullmq-queue.ts's runMember writes them), in one MULTI with BullMQ's own
 * moveStalledJobsToWait script, so the rows name exactly the jobs that script moves, with what the hash
 * held before any worker claimed them again (the lost attempt's number `atm + 1`). The conditions are
 * BullMQ 6's: no check ran within its interval (`stalled-check`), the job was marked at the previous check
 * (`stalled`), its lock is gone and it is still active. Only a job whose start was noted for its current
 * claim (the start note names its `processedOn`; see bullmq-queue.ts's startedKey) lost an attempt: a job
 * its worker only held (prefetched) gets no row, and its stall count is taken down by the one BullMQ's
 * script adds, so it counts no stall. A job whose stall count passes the limit is dead (whatever else);
 * else one someone asked to cancel ends cancelled. Every such job's note is removed. Returns the rows' JSON.
 */
const STALLED_ROWS = `
local stalledKey, activeKey, checkKey, runsKey, startedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobPrefix, now, maxStalls = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local idPrefix, cancelPrefix, queue, err = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', checkKey) == 1 then return {} end
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', stalledKey)) do
  if string.sub(id, 1, 2) ~= '0:' then
    local jobKey = jobPrefix .. id
    if redis.call('EXISTS', jobKey .. ':lock') == 0 and redis.call('LPOS', activeKey, id) then
      local f = redis.call('HMGET', jobKey, 'name', 'timestamp', 'processedOn', 'atm', 'stc')
      local publicId = idPrefix .. id
      local note = redis.call('HGET', startedKey, publicId)
      local claim, started
      if note then claim, started = string.match(note, '^(%d+):(%d+)$') end
      if note then redis.call('HDEL', startedKey, publicId) end
      if started and claim == (f[3] or '0') then
        local status = 'retrying'
        if tonumber(f[5] or '0') + 1 > maxStalls then status = 'failed'
        elseif redis.call('EXISTS', cancelPrefix .. publicId) == 1 then status = 'cancelled' end
        local row = cjson.encode({
          task_id = publicId, queue = queue, name = f[1] or '', attempt = tonumber(f[4] or '0') + 1,
          status = status, enqueued = tonumber(f[2] or '0'), started = tonumber(started),
          finished = now, worker = cjson.null, error = err })
        redis.call('ZADD', runsKey, 0, publicId .. '\\n' .. string.rep('0', 15 - #ARGV[2]) .. ARGV[2] .. '\\n' .. row)
        table.insert(out, row)
      else
        redis.call('HINCRBY', jobKey, 'stc', -1)
      end
    end
  end
end
return out`;

type AnyBackend = ReturnType<AnyQueue['getBackend']>;

/** BullMQ's arguments to moveStalledJobsToWait for this backend's queue (its keys, then its settings). */
const stalledArgs = (backend: AnyBackend) =>
  (backend as unknown as { moveStalledJobsToWaitArgs(): Array<string | number> }).moveStalledJobsToWaitArgs();

/** The layout check of the stalled-check arguments (undefined: as expected). */
function stalledFinding(queue: AnyQueue): string | undefined {
  const args = stalledArgs(queue.getBackend());
  return args.length === 13 &&
    args[0] === queue.keys.stalled &&
    args[2] === queue.keys.active &&
    args[3] === queue.keys['stalled-check'] &&
    args[10] === queue.toKey('')
    ? undefined
    : "BullMQ's moveStalledJobsToWait arguments are not laid out as expected";
}

/** Stalled jobs back to their queue with their lost attempts' rows (shortcut `bullmq_stalled`). */
export class StalledSweep {
  constructor(private readonly shortcuts: Shortcuts) {}

  /** Whether this process runs the sweep (else BullMQ's own stalled check timer runs, rows after the fact). */
  get usable(): boolean {
    return this.shortcuts.usable('bullmq_stalled');
  }

  /**
   * Runs one check on `w`'s queue: the rows of the attempts lost and BullMQ's move, atomically. Returns
   * the rows' JSON (none when another process checked within the interval).
   */
  async sweep(
    w: AnyWorker,
    o: {
      runsKey: string;
      startedKey: string;
      maxStalls: number;
      idPrefix: string;
      cancelPrefix: string;
      queue: string;
      error: string;
    },
  ): Promise<string[]> {
    const backend = w.getBackend();
    const client = await backend.client;
    const tx = client.multi() as unknown as {
      eval(script: string, keys: number, ...args: Array<string | number>): void;
      exec(): Promise<Array<[Error | null, unknown]> | null>;
    };
    tx.eval(
      STALLED_ROWS,
      5,
      w.keys.stalled as string,
      w.keys.active as string,
      w.keys['stalled-check'] as string,
      o.runsKey,
      o.startedKey,
      w.toKey(''),
      Date.now(),
      o.maxStalls,
      o.idPrefix,
      o.cancelPrefix,
      o.queue,
      o.error,
    );
    // Queued on the MULTI (a transaction's runCommand returns the transaction, not a reply).
    backend.execCommand(tx as never, 'moveStalledJobsToWait', stalledArgs(backend));
    const res = (await tx.exec()) ?? [];
    for (const [err] of res) if (err) throw err;
    this.shortcuts.count('bullmq_stalled', true);
    return (res[0]?.[1] as string[] | undefined) ?? [];
  }
}
