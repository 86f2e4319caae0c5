import type { FastifyInstance } from 'fastify';

export interface RouteInfo {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** OpenAPI path, e.g. /api/v1/campaigns/{id}. */
  path: string;
  /** The path with sample parameter values filled in. */
  samplePath: string;
  requiredRole: string | undefined;
  parameters: { name: string; in: 'path' | 'query'; required?: boolean; schema: JsonSchema }[];
  body: JsonSchema | undefined;
}

export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  format?: string;
  nullable?: boolean;
  [k: string]: unknown;
}

const SAMPLE_PARAMS: Record<string, string> = { id: '999999', blockId: '1', name: 'default', key: 'nope' };

/** Every documented route of the app, from its own OpenAPI document. */
export async function openApiRoutes(app: FastifyInstance): Promise<RouteInfo[]> {
  await app.ready();
  const doc = app.swagger() as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> };
  const out: RouteInfo[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      const method = m.toUpperCase() as RouteInfo['method'];
      if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) continue;
      // A stream with nothing to end it (no task to finish) would hold a route-by-route test for ever;
      // such streams have tests of their own (test/telemetry/live-summary.test.ts).
      if (String(op.description ?? '').startsWith('Server-sent events') && !path.includes('{')) continue;
      const body = (op.requestBody as { content?: Record<string, { schema: JsonSchema }> } | undefined)
        ?.content?.['application/json']?.schema;
      out.push({
        method,
        path,
        samplePath: path.replace(/\{(\w+)\}/g, (_, p: string) => SAMPLE_PARAMS[p] ?? '1'),
        requiredRole:
          /Required role: (\w+)\./.exec(String(op.description ?? ''))?.[1] ??
          (/Open: no API key needed/.test(String(op.description ?? '')) ? 'public' : undefined),
        parameters: (op.parameters as RouteInfo['parameters'] | undefined) ?? [],
        body,
      });
    }
  }
  return out;
}
