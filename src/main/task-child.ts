/**
 * Composition root of a sandbox child process (forked by the worker's sandbox
 * pool): loads the task catalogue and builds task dependencies lazily, so a child
 * that runs only CPU work never opens a database or a Redis connection.
 */
import { loadConfig } from '../config/config.js';
import { type DatabaseHandle, openDatabase } from '../db/database.js';
import { createJobQueue } from '../jobs/create-queue.js';
import { runTaskChild } from '../jobs/sandbox/child.js';
import type { JobQueue } from '../jobs/types.js';
import type { TaskDeps } from '../tasks/deps.js';
import { createTaskRegistry } from '../tasks/index.js';
import { createLogger } from './system.js';

const config = loadConfig();
const logger = createLogger(config).child({ sandbox: true });
let database: DatabaseHandle | undefined;
let queue: JobQueue | undefined;
const deps: TaskDeps = {
  config,
  logger,
  dialect: config.database.dialect,
  db: () => (database ??= openDatabase(config.database)).db,
  queue: () => (queue ??= createJobQueue(config, logger)),
};
process.once('disconnect', () => {
  void queue?.close(1000);
  void database?.close();
});
runTaskChild({ registry: createTaskRegistry(), deps, logger });
