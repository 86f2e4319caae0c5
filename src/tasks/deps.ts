import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Db, Dialect } from '../db/types.js';
import type { ChangeNotifier } from '../domain/changes.js';
import type { JobAdmin } from '../jobs/types.js';
import type { MediaServices } from '../media/media-services.js';

/**
 * What task handlers receive as `ctx.deps`. The worker process builds it from
 * its System; a sandbox child builds its own (src/main/task-child.ts), lazily,
 * so a child that never touches the database never opens it.
 */
export interface TaskDeps {
  config: Config;
  logger: Logger;
  /** The main database. */
  db(): Db;
  dialect: Dialect;
  /** The job queue's administration role (maintenance: pruning finished jobs). */
  queue(): JobAdmin;
  /** The media pipeline (narration, renders, storage), built once per process by its composition root. */
  media(): MediaServices;
  /** Where tasks that write announce what they changed (see src/domain/changes.ts). */
  changes(): ChangeNotifier;
}
