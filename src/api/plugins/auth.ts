import type { FastifyInstance } from 'fastify';
import { type ApiKeysService, type Principal, roleAllows } from '../../auth/api-keys.service.js';
import type { Role } from '../../db/types.js';
import { AppError } from '../../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Least role a route needs; default viewer for GET/HEAD and editor for writes. `public` skips auth. */
    auth?: Role | 'public';
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Requires `Authorization: Bearer <key>` with a role that the route allows (401 without, 403 below). */
export function registerAuth(
  app: FastifyInstance,
  apiKeys: ApiKeysService,
  publicPrefixes: string[] = [],
): void {
  app.decorateRequest('principal', null);
  // Document each route's role in the OpenAPI document, from the same rule the hook enforces.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const required = route.config?.auth ?? (methods.every((m) => READ_METHODS.has(m)) ? 'viewer' : 'editor');
    if (route.schema) {
      const schema = route.schema as { description?: string; security?: unknown[] };
      const note = required === 'public' ? 'Open: no API key needed.' : `Required role: ${required}.`;
      // HEAD routes share their GET route's schema object: add the note once.
      if (!schema.description?.endsWith(note)) {
        schema.description = schema.description ? `${schema.description}\n\n${note}` : note;
      }
      if (required === 'public') schema.security = [];
    }
  });
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const url = request.routeOptions.url ?? '';
    if (publicPrefixes.some((p) => url === p || url.startsWith(`${p}/`))) return;
    const required =
      request.routeOptions.config.auth ?? (READ_METHODS.has(request.method) ? 'viewer' : 'editor');
    if (required === 'public') return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S{1,512})\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new AppError('UNAUTHENTICATED', 'send Authorization: Bearer <api key>');
    }
    const principal = await apiKeys.verify(match[1]);
    if (!principal) throw new AppError('UNAUTHENTICATED', 'API key is unknown or revoked');
    request.principal = principal;
    if (!roleAllows(principal.role, required)) {
      throw new AppError('FORBIDDEN', `this needs the ${required} role`, { required, role: principal.role });
    }
  });
}
