/**
 * A local OTLP/HTTP endpoint for benchmarks, in a process of its own: it reads each export to the
 * end and answers 200 with an empty response, as a collector does, without decoding it (a
 * collector's work happens on its own machine). GET /stats: the exports and bytes received.
 *   PORT=4318 node --import tsx bench/lib/otlp-sink.ts
 */
import http from 'node:http';

let requests = 0;
let bytes = 0;
const server = http.createServer((req, res) => {
  let size = 0;
  req.on('data', (c: Buffer) => (size += c.length));
  req.on('end', () => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ requests, bytes }));
      return;
    }
    requests++;
    bytes += size;
    res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' }).end();
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
