/**
 * Composition root of a sandbox child process (started for the worker's sandbox
 * pool): the task handlers it may run, loaded on first use
 * (src/tasks/sandbox-catalogue.ts), and their dependencies (task-child-deps.ts).
 */
import { runTaskChild } from '../jobs/sandbox/child.js';
import { SANDBOX_CATALOGUE } from '../tasks/sandbox-catalogue.js';
import { childLogger, childTaskDeps } from './task-child-deps.js';

runTaskChild({ catalogue: SANDBOX_CATALOGUE, deps: childTaskDeps, logger: childLogger });
