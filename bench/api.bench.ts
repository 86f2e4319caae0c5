/**
 * bench:api — autocannon against the real API (a separate process, embedded mode on a
 * SQLite file) and, in the same run, a bare Fastify hello-world as the baseline.
 *   npm run bench:api [-- --quick]
 * Cases: get_campaign (GET /api/v1/campaigns/{id}), list_campaigns (GET /api/v1/campaigns?client_id=&status=&limit=20),
 * hello (baseline), hello_payload (the list's own JSON from the bare server: what the payload alone costs).
 * Metrics: rps (with baseline and ratio), p99_ms.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/support/services.js';
import { emit, isQuick, printTable } from './lib/report.js';
import { type BenchServer, load, startNodeServer } from './lib/servers.js';

const quick = isQuick();
const DURATION_S = quick ? 4 : 15;
const CONNECTIONS = 50;
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-api-'));
const payloadFile = path.join(dataDir, 'list-payload.json');
const apiPort = await freePort();
const helloPort = await freePort();
const api = await startNodeServer(
  'src/main/cli.ts',
  ['serve'],
  {
    PORT: String(apiPort),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
    DATABASE_URL: '',
    // Seeding writes a thousand rows through the API.
    RATE_LIMIT_WRITES_PER_MIN: '100000',
  },
  `http://127.0.0.1:${apiPort}`,
  '/ready',
);

let hello: BenchServer | undefined;
try {
  const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
  const post = async (url: string, body: unknown) => {
    const r = await fetch(`${api.url}${url}`, { method: 'POST', headers, body: JSON.stringify(body) });
    if (r.status !== 201) throw new Error(`seed ${url}: ${r.status} ${await r.text()}`);
    return (await r.json()) as { id: number };
  };
  // A modest, realistic dataset: 20 clients × 50 campaigns.
  let clientId = 0;
  let campaignId = 0;
  for (let c = 0; c < 20; c++) {
    const client = await post('/api/v1/clients', { name: `client ${c}` });
    if (c === 7) clientId = client.id;
    for (let k = 0; k < 50; k++) {
      const camp = await post('/api/v1/campaigns', {
        client_id: client.id,
        name: `campaign ${c}-${k}`,
        platform: ['youtube', 'instagram', 'tiktok', 'facebook'][k % 4],
        status: k % 5 === 0 ? 'paused' : 'active',
        concept_tone: 'warm',
      });
      if (c === 7 && k === 25) campaignId = camp.id;
    }
  }

  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  const listUrl = `${api.url}/api/v1/campaigns?client_id=${clientId}&status=active&limit=20`;
  // The list's own JSON, served by the bare baseline too: the share of the gap that is the payload itself.
  fs.writeFileSync(payloadFile, await (await fetch(listUrl, { headers: auth })).text());
  hello = await startNodeServer(
    'bench/lib/hello-server.ts',
    [],
    { PORT: String(helloPort), PAYLOAD_FILE: payloadFile },
    `http://127.0.0.1:${helloPort}`,
    '/',
  );
  const cases: [string, string, Record<string, string> | undefined][] = [
    ['hello', `${hello.url}/`, undefined],
    ['get_campaign', `${api.url}/api/v1/campaigns/${campaignId}`, auth],
    ['list_campaigns', listUrl, auth],
    ['hello_payload', `${hello.url}/payload`, undefined],
  ];
  // Warm up every target (JIT, statement caches) before measuring.
  for (const [, url, h] of cases) await load(url, { connections: 10, durationS: 1, headers: h });
  const results: Record<string, Awaited<ReturnType<typeof load>>> = {};
  for (const [name, url, h] of cases) {
    results[name] = await load(url, { connections: CONNECTIONS, durationS: DURATION_S, headers: h });
    const r = results[name];
    if (r.errors > 0 || r.non2xx > 0)
      throw new Error(`${name}: ${r.errors} errors, ${r.non2xx} non-2xx responses`);
  }
  const base = results.hello?.rps ?? Number.NaN;
  for (const [name] of cases) {
    const r = results[name];
    if (!r) continue;
    const backend = name.startsWith('hello') ? 'fastify' : 'sqlite';
    const extra = { connections: CONNECTIONS, duration_s: DURATION_S };
    emit({
      bench: 'api',
      case: name,
      backend,
      metric: 'rps',
      value: r.rps,
      unit: 'req/s',
      ...(name === 'hello' ? {} : { baseline: base }),
      ...extra,
    });
    emit({ bench: 'api', case: name, backend, metric: 'p99_ms', value: r.p99Ms, unit: 'ms', ...extra });
  }
} finally {
  await api.stop();
  await hello?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
  printTable();
}
