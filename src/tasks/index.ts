/**
 * The task catalogue: every task this build knows. To add one, write
 * `src/tasks/<name>.task.ts` with `defineTask(...)` (see src/jobs/registry.ts for
 * the fields) and add it to TASKS below. The same list is loaded by worker
 * processes and by sandbox children, so a task runs the same wherever it runs.
 */
import { type AnyTaskDefinition, TaskRegistry } from '../jobs/registry.js';
import { aggregateStatsTask } from './aggregate-stats.task.js';
import { audioBatchTask } from './audio-batch.task.js';
import { cleanupTask } from './cleanup.task.js';
import { diagnosticTasks } from './diagnostics.task.js';
import { generateAudioTask } from './generate-audio.task.js';
import { renderVideoTask } from './render-video.task.js';

export const TASKS: readonly AnyTaskDefinition[] = [
  aggregateStatsTask,
  cleanupTask,
  ...diagnosticTasks,
  generateAudioTask,
  renderVideoTask,
  audioBatchTask,
];

/** Names admins may enqueue through POST /api/v1/tasks: the diagnostics and the maintenance tasks. */
export const ADMIN_ENQUEUEABLE: ReadonlySet<string> = new Set<string>([
  ...diagnosticTasks.map((t) => t.name),
  aggregateStatsTask.name,
  cleanupTask.name,
]);

export function createTaskRegistry(): TaskRegistry {
  return new TaskRegistry(TASKS);
}
