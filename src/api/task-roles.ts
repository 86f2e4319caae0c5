/**
 * Who may act on a task (cancel, retry): the role that may enqueue it. Admins
 * enqueue by name the tasks in `adminEnqueueable` (diagnostics, maintenance,
 * statistics); editors enqueue the others (narration, renders) through the media
 * routes. A name no registered task has is treated as admin-only.
 */
import { type Principal, roleAllows } from '../auth/api-keys.service.js';
import type { Role } from '../db/types.js';
import { AppError } from '../errors.js';
import type { Jobs } from '../jobs/jobs.js';

export function roleToActOn(jobs: Pick<Jobs, 'adminEnqueueable' | 'registry'>, taskName: string): Role {
  return jobs.adminEnqueueable.has(taskName) || !jobs.registry.get(taskName) ? 'admin' : 'editor';
}

export function mayActOn(
  jobs: Pick<Jobs, 'adminEnqueueable' | 'registry'>,
  principal: Principal | null,
  taskName: string,
): boolean {
  return principal !== null && roleAllows(principal.role, roleToActOn(jobs, taskName));
}

/** Throws FORBIDDEN (403) unless the principal may act on a task of this name. */
export function assertMayActOn(
  jobs: Pick<Jobs, 'adminEnqueueable' | 'registry'>,
  principal: Principal | null,
  taskName: string,
): void {
  if (mayActOn(jobs, principal, taskName)) return;
  const required = roleToActOn(jobs, taskName);
  throw new AppError('FORBIDDEN', `acting on a ${taskName} task needs the ${required} role`, {
    required,
    role: principal?.role ?? null,
  });
}
