/**
 * What a sandbox child can run: each sandboxed task's handler by name, loaded on
 * first use. A child imports only the module of the task it runs, not the
 * catalogue in index.ts: the whole catalogue (TypeBox, the media pipeline, the
 * database layer) costs about half a second of CPU per child start, and children
 * are recycled every --max-tasks-per-child tasks.
 *
 * Every task declared `sandboxed: true` in index.ts has an entry here with the
 * same handler (test/jobs/sandbox.test.ts, "sandbox catalogue", checks both ways).
 * `deps: true` when the handler uses ctx.deps: the child builds them (config,
 * database, queue, cache) only for such tasks.
 */
import type { SandboxEntry } from '../jobs/sandbox/child.js';

export const SANDBOX_CATALOGUE: Readonly<Record<string, SandboxEntry>> = {
  'video.render': {
    load: async () => (await import('./render-video.task.js')).renderVideoTask.handler,
    deps: true,
  },
  'diagnostics.noop_sandboxed': {
    load: async () => (await import('./diagnostics.handlers.js')).noopPid,
    deps: false,
  },
  'diagnostics.sleep_timeout_sandboxed': {
    load: async () => (await import('./diagnostics.handlers.js')).sleepHandler,
    deps: false,
  },
  'diagnostics.cpu': {
    load: async () => (await import('./diagnostics.handlers.js')).burnCpu,
    deps: false,
  },
};
