import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/** Server-sent events' response headers: nothing between us and the client may buffer or cache them. */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

/** Takes the reply over for server-sent events and writes their headers. */
export function openEventStream(reply: FastifyReply): ServerResponse {
  reply.hijack();
  return reply.raw.writeHead(200, SSE_HEADERS);
}
