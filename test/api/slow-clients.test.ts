/**
 * Slow clients over raw sockets (one byte every second): a request refused while its body is
 * still coming is answered and its connection closed; a slow body or slow headers are cut off
 * by the request and header time-outs. Every case is bounded by the test's own deadline.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../support/app.js';

interface Trickle {
  /** What the server sent. */
  received: () => string;
  /** Milliseconds from connect until the server closed the connection, or null if it did not by the deadline. */
  closedAfter: Promise<number | null>;
}

describe('slow clients', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await makeTestApp('sqlite', { HTTP_REQUEST_TIMEOUT_MS: '3000', HTTP_HEADERS_TIMEOUT_MS: '2000' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => t.close());

  /** Sends `head` at once, then one byte of `trickle` a second, until the server closes or `deadlineMs` passes. */
  function trickle(head: string, deadlineMs: number): Trickle {
    const socket = net.connect(port, '127.0.0.1');
    const started = Date.now();
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    socket.on('error', () => undefined); // a reset by the server is one way of closing
    socket.write(head);
    const drip = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write('x');
    }, 1000);
    const closedAfter = new Promise<number | null>((resolve) => {
      const deadline = setTimeout(() => {
        clearInterval(drip);
        socket.destroy();
        resolve(null);
      }, deadlineMs);
      socket.on('close', () => {
        clearTimeout(deadline);
        clearInterval(drip);
        resolve(Date.now() - started);
      });
    });
    return { received: () => received, closedAfter };
  }
  const post = (headers: string) =>
    `POST /api/v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n${headers}\r\n`;

  it('answers a keyless POST at once and closes its connection while the body is still coming', async () => {
    const c = trickle(post(''), 8000);
    const closed = await c.closedAfter;
    expect(c.received()).toMatch(/^HTTP\/1\.1 401/);
    expect(c.received()).toMatch(/connection: close/i);
    expect(closed).not.toBeNull();
    expect(closed).toBeLessThan(2000);
  });

  it('cuts off an authenticated body that trickles past the request time-out', async () => {
    const c = trickle(post(`Authorization: Bearer ${t.keys.editor}\r\n`), 9000);
    const closed = await c.closedAfter;
    expect(closed).not.toBeNull();
    expect(closed).toBeGreaterThanOrEqual(2500);
    expect(closed).toBeLessThan(6000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408|^$/);
  });

  it('cuts off headers that trickle past the header time-out', async () => {
    const c = trickle('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 9000);
    const closed = await c.closedAfter;
    expect(closed).not.toBeNull();
    expect(closed).toBeLessThan(5000);
  });
});
