/**
 * Bull Board as a Fastify plugin, registered at BULL_BOARD_PATH (/admin/queues)
 * in distributed mode, admin role required: every route of the board is
 * registered in this plugin's own context, whose onRoute hook sets
 * `auth: 'admin'`. The composition root passes the BullMQ queues (app.ts
 * registers the plugin only when there are some).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyPluginAsync } from 'fastify';
import { AppError } from '../../errors.js';

/** The queues the board shows (BullMQ's Queue objects). */
export type BullBoardQueue = ConstructorParameters<typeof BullMQAdapter>[0];

export const BULL_BOARD_PATH = '/admin/queues';

export interface BullBoardOptions {
  queues: readonly BullBoardQueue[];
}

export const bullBoardPlugin: FastifyPluginAsync<BullBoardOptions> = async (board, { queues }) => {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter });
  // The board's own error handler would turn our 401/403 into 500s: keep the API's error format.
  // (Its typings allow neither 401 nor our error body, hence the casts; fastify sends whatever status it is given.)
  type BoardResponse = ReturnType<Parameters<FastifyAdapter['setErrorHandler']>[0]>;
  serverAdapter.setErrorHandler((err: Error) => {
    if (err instanceof AppError)
      return {
        status: err.status,
        body: {
          error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
        },
      } as unknown as BoardResponse;
    board.log.error({ err }, 'Bull Board failed');
    return {
      status: 500,
      body: { error: { code: 'INTERNAL', message: 'Bull Board failed' } },
    } as unknown as BoardResponse;
  });
  board.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), auth: 'admin' };
  });
  await board.register(serverAdapter.registerPlugin());
};
