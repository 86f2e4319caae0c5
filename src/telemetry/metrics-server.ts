import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

export interface MetricsServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A listener that serves only GET /metrics, without a key: for `omnivibe worker` (WORKER_METRICS_PORT,
 * `--metrics-port`) and the API's METRICS_PORT. It binds METRICS_HOST, loopback by default, so only
 * what runs on the machine (a Prometheus agent, a proxy) can read it unless an operator opens it.
 */
export async function startMetricsServer(
  metrics: Metrics,
  host: string,
  port: number,
  logger: Logger,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: this listener serves GET /metrics\n');
      return;
    }
    metrics.expose(req.headers.accept).then(
      (out) => {
        res.writeHead(200, { 'content-type': out.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : out.body);
      },
      (err: unknown) => {
        logger.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
