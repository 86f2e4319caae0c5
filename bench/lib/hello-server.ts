/**
 * The baseline server for API benchmarks: a bare Fastify on PORT with `GET /` (hello-world)
 * and, when PAYLOAD_FILE is set, `GET /payload` answering that JSON document, so a
 * benchmark can tell the cost of its payload from the cost of the application.
 */
import fs from 'node:fs';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
const payloadFile = process.env.PAYLOAD_FILE;
if (payloadFile) {
  const payload: unknown = JSON.parse(fs.readFileSync(payloadFile, 'utf8'));
  app.get('/payload', async () => payload);
}
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.stdout.write('ready\n');
