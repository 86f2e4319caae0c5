/**
 * A local OTLP/HTTP trace receiver for tests: an HTTP server on loopback that accepts
 * `POST /v1/traces` in the exporter's real wire formats, protobuf (`application/x-protobuf`,
 * decoded here from the OTLP .proto field numbers) and JSON (`application/json`), and keeps the
 * spans it received. It answers like a collector: 200 with an empty ExportTraceServiceResponse.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  links: { traceId: string; spanId: string }[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: number;
  /** The `service.name` and `process.pid` of the process that sent it. */
  service: string;
  pid: number | undefined;
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Requests received, by content type. */
  readonly requests: Map<string, number>;
  /** Resolves when a span matching `pred` arrived (rejects after `timeoutMs`). */
  waitFor(pred: (s: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- protobuf

/** A minimal protobuf reader: varints, fixed 32/64-bit and length-delimited fields. */
class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error('truncated varint');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Uint8Array {
    const len = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  fixed64(): bigint {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getBigUint64(0, true);
    this.pos += 8;
    return v;
  }
  double(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }
  /** Each field as [number, wire type]; the callback reads its value (or it is skipped). */
  fields(each: (field: number, wire: number) => boolean): void {
    while (!this.done) {
      const tag = Number(this.varint());
      const field = tag >>> 3;
      const wire = tag & 7;
      if (each(field, wire)) continue;
      if (wire === 0) this.varint();
      else if (wire === 1) this.pos += 8;
      else if (wire === 2) this.bytes();
      else if (wire === 5) this.pos += 4;
      else throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const utf8 = (b: Uint8Array) => Buffer.from(b).toString('utf8');

function anyValue(buf: Uint8Array): string | number | boolean {
  let v: string | number | boolean = '';
  const r = new Reader(buf);
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) v = utf8(r.bytes());
    else if (field === 2 && wire === 0) v = r.varint() !== 0n;
    else if (field === 3 && wire === 0) v = Number(BigInt.asIntN(64, r.varint()));
    else if (field === 4 && wire === 1) v = r.double();
    else return false;
    return true;
  });
  return v;
}

function keyValue(buf: Uint8Array): [string, string | number | boolean] {
  let key = '';
  let value: string | number | boolean = '';
  const r = new Reader(buf);
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) key = utf8(r.bytes());
    else if (field === 2 && wire === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  return [key, value];
}

function link(buf: Uint8Array): { traceId: string; spanId: string } {
  const l = { traceId: '', spanId: '' };
  const r = new Reader(buf);
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) l.traceId = hex(r.bytes());
    else if (field === 2 && wire === 2) l.spanId = hex(r.bytes());
    else return false;
    return true;
  });
  return l;
}

function span(buf: Uint8Array, service: string, pid: number | undefined): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: 0,
    startNs: 0n,
    endNs: 0n,
    attributes: {},
    links: [],
    status: 0,
    service,
    pid,
  };
  const r = new Reader(buf);
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) s.traceId = hex(r.bytes());
    else if (field === 2 && wire === 2) s.spanId = hex(r.bytes());
    else if (field === 4 && wire === 2) s.parentSpanId = hex(r.bytes());
    else if (field === 5 && wire === 2) s.name = utf8(r.bytes());
    else if (field === 6 && wire === 0) s.kind = Number(r.varint());
    else if (field === 7 && wire === 1) s.startNs = r.fixed64();
    else if (field === 8 && wire === 1) s.endNs = r.fixed64();
    else if (field === 9 && wire === 2) {
      const [k, v] = keyValue(r.bytes());
      s.attributes[k] = v;
    } else if (field === 13 && wire === 2) s.links.push(link(r.bytes()));
    else if (field === 15 && wire === 2) {
      const st = new Reader(r.bytes());
      st.fields((f, w) => {
        if (f === 3 && w === 0) s.status = Number(st.varint());
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return s;
}

/** ExportTraceServiceRequest → spans (resource_spans 1 → resource 1 / scope_spans 2 → spans 2). */
function decodeProtobuf(buf: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const req = new Reader(buf);
  req.fields((field, wire) => {
    if (field !== 1 || wire !== 2) return false;
    const rs = new Reader(req.bytes());
    const resource: Record<string, string | number | boolean> = {};
    const scopeSpans: Uint8Array[] = [];
    rs.fields((f, w) => {
      if (f === 1 && w === 2) {
        const res = new Reader(rs.bytes());
        res.fields((ff, ww) => {
          if (ff !== 1 || ww !== 2) return false;
          const [k, v] = keyValue(res.bytes());
          resource[k] = v;
          return true;
        });
      } else if (f === 2 && w === 2) scopeSpans.push(rs.bytes());
      else return false;
      return true;
    });
    const service = String(resource['service.name'] ?? '');
    const pid = typeof resource['process.pid'] === 'number' ? resource['process.pid'] : undefined;
    for (const ss of scopeSpans) {
      const r = new Reader(ss);
      r.fields((f, w) => {
        if (f !== 2 || w !== 2) return false;
        out.push(span(r.bytes(), service, pid));
        return true;
      });
    }
    return true;
  });
  return out;
}

// ---------------------------------------------------------------- JSON

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}
interface JsonKeyValue {
  key: string;
  value: JsonAnyValue;
}

const jsonValue = (v: JsonAnyValue): string | number | boolean =>
  v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? ''));
const jsonAttrs = (kvs: JsonKeyValue[] | undefined) =>
  Object.fromEntries((kvs ?? []).map((kv) => [kv.key, jsonValue(kv.value)]));

/** OTLP/JSON: ids are hex strings, times decimal strings (the OTLP JSON mapping). */
function decodeJson(text: string): ReceivedSpan[] {
  const body = JSON.parse(text) as {
    resourceSpans?: {
      resource?: { attributes?: JsonKeyValue[] };
      scopeSpans?: {
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          name: string;
          kind?: number;
          startTimeUnixNano: string;
          endTimeUnixNano: string;
          attributes?: JsonKeyValue[];
          links?: { traceId: string; spanId: string }[];
          status?: { code?: number };
        }[];
      }[];
    }[];
  };
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = jsonAttrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? [])
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: jsonAttrs(s.attributes),
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          status: s.status?.code ?? 0,
          service: String(resource['service.name'] ?? ''),
          pid: typeof resource['process.pid'] === 'number' ? resource['process.pid'] : undefined,
        });
  }
  return out;
}

// ---------------------------------------------------------------- server

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests = new Map<string, number>();
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = (req.headers['content-type'] ?? '').split(';')[0] as string;
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      requests.set(type, (requests.get(type) ?? 0) + 1);
      const body = Buffer.concat(chunks);
      try {
        spans.push(
          ...(type === 'application/json' ? decodeJson(body.toString('utf8')) : decodeProtobuf(body)),
        );
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
        return;
      }
      for (const w of waiters) w();
      // An empty ExportTraceServiceResponse in the request's own encoding.
      if (type === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    waitFor(pred, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = spans.find(pred);
          if (!found) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching span within ${timeoutMs} ms (${spans.length} received)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
