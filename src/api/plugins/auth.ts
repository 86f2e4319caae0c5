import type { FastifyInstance } from 'fastify';
import { type ApiKeysService, type Principal, roleAllows } from '../../auth/api-keys.service.js';
import type { Role } from '../../db/types.js';
import type { FailedAuthLimiter } from '../../auth/failed-auth-limiter.js';
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

/** Browser pages (the dashboard, Bull Board): they also take the key as an HTTP Basic password. */
const BROWSER_PREFIX = '/admin';
const BASIC_CHALLENGE = 'Basic realm="OmniVibe Pro operators", charset="UTF-8"';

/** The API key in `Authorization`: a Bearer token, or on browser pages the password of HTTP Basic. */
function presentedKey(header: string | undefined, browser: boolean): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S{1,512})\s*$/i.exec(header)?.[1];
  if (bearer || !browser) return bearer;
  const basic = /^Basic\s+([A-Za-z0-9+/]{1,1024}={0,2})\s*$/i.exec(header)?.[1];
  if (!basic) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && decoded.length - colon - 1 <= 512 ? decoded.slice(colon + 1) || undefined : undefined;
}

/**
 * Requires `Authorization: Bearer <key>` with a role that the route allows (401 without, 403 below).
 * Pages under /admin also accept HTTP Basic (any user name, the key as password) and answer 401 with a
 * Basic challenge, so a browser asks for the key and then sends it with every request.
 */
export function registerAuth(
  app: FastifyInstance,
  apiKeys: ApiKeysService,
  failedAuth: FailedAuthLimiter,
  publicPrefixes: string[] = [],
): void {
  /** A key that is not cached as valid: refused at once when its address failed too often, else looked up. */
  const authenticate = async (key: string | undefined, address: string, browser: boolean) => {
    const wait = failedAuth.retryAfterS(address);
    if (wait > 0) {
      throw new AppError(
        'RATE_LIMITED',
        'too many failed authentications from this address',
        { scope: 'address' },
        wait,
      );
    }
    if (!key) {
      failedAuth.fail(address);
      throw new AppError(
        'UNAUTHENTICATED',
        browser
          ? 'sign in with an API key (as the HTTP Basic password, or Authorization: Bearer <api key>)'
          : 'send Authorization: Bearer <api key>',
      );
    }
    const principal = await apiKeys.verify(key);
    if (!principal) {
      failedAuth.fail(address);
      throw new AppError('UNAUTHENTICATED', 'API key is unknown or revoked');
    }
    return principal;
  };
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
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404) return;
    const url = request.routeOptions.url ?? '';
    if (publicPrefixes.some((p) => url === p || url.startsWith(`${p}/`))) return;
    const required =
      request.routeOptions.config.auth ?? (READ_METHODS.has(request.method) ? 'viewer' : 'editor');
    if (required === 'public') return;
    const browser = url === BROWSER_PREFIX || url.startsWith(`${BROWSER_PREFIX}/`);
    const key = presentedKey(request.headers.authorization, browser);
    if (browser) reply.header('www-authenticate', BASIC_CHALLENGE);
    const principal = (key && apiKeys.cached(key)) || (await authenticate(key, request.ip, browser));
    if (browser) reply.removeHeader('www-authenticate');
    request.principal = principal;
    if (!roleAllows(principal.role, required)) {
      throw new AppError('FORBIDDEN', `this needs the ${required} role`, { required, role: principal.role });
    }
  });
}
