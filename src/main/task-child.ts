/**
 * Composition root of a sandbox child process (started for the worker's sandbox
 * pool): the task handlers it may run, loaded on first use
 * (src/tasks/sandbox-catalogue.ts), and their dependencies (task-child-deps.ts).
 * When the worker traces (it says so in the environment), the child exports its
 * own spans, each task's under the worker's attempt span; otherwise nothing of
 * the tracing SDK is loaded.
 */
import { runTaskChild } from '../jobs/sandbox/child.js';
import { SANDBOX_TRACING_ENV } from '../jobs/sandbox/protocol.js';
import { SANDBOX_CATALOGUE } from '../tasks/sandbox-catalogue.js';
import { childLogger, childTaskDeps, childTracing } from './task-child-deps.js';

const tracing = process.env[SANDBOX_TRACING_ENV] === '1' ? await childTracing() : undefined;

runTaskChild({
  catalogue: SANDBOX_CATALOGUE,
  deps: (report) => childTaskDeps(report, tracing?.tracing),
  logger: childLogger,
  ...(tracing ? { spans: tracing.tracing, beforeExit: () => tracing.shutdown() } : {}),
});
