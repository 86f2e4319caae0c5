/**
 * bench:queue's sandbox child: the product's (src/main/task-child.ts) with
 * `audio.generate` added, so the sandbox_overhead case can time a narration
 * in a child against the same narration in-process.
 */
import { runTaskChild } from '../../src/jobs/sandbox/child.js';
import { childLogger, childTaskDeps } from '../../src/main/task-child-deps.js';
import { SANDBOX_CATALOGUE } from '../../src/tasks/sandbox-catalogue.js';

runTaskChild({
  catalogue: {
    ...SANDBOX_CATALOGUE,
    'audio.generate': {
      load: async () => (await import('../../src/tasks/generate-audio.task.js')).generateAudioTask.handler,
      deps: true,
    },
  },
  deps: childTaskDeps,
  logger: childLogger,
});
