/**
 * Sends a stored file as an HTTP download (RFC 9110): validators (`ETag`,
 * `Last-Modified`); conditional requests (`If-None-Match`, else
 * `If-Modified-Since`, answer 304); byte ranges (`Range`, only while `If-Range`
 * still names this file): one range is a 206 with `Content-Range`, several are a
 * 206 `multipart/byteranges`, none satisfiable is a 416. A `Range` header that is
 * not a well-formed bytes range set is ignored (the whole file, 200), as the RFC
 * allows. A download with a presigned URL (S3, MEDIA_PRESIGN_TTL_S) is a 302 to
 * it. Every media download goes through here.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { FileDownload } from '../media/storage/media-store.js';

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * More parts than this (after overlapping or adjacent ranges are merged) get the
 * whole file instead: many tiny parts cost more to frame than to send, and are a
 * known way to make a server work hard for little.
 */
export const MAX_RANGE_PARTS = 16;

/**
 * The satisfiable ranges of a `Range` header for a file of `size` bytes:
 * undefined when the header is not a bytes range set (ignore it), [] when none is
 * satisfiable (416). Overlapping or adjacent ranges are merged (in file order);
 * otherwise the order asked for is kept.
 */
export function parseRanges(header: string, size: number): ByteRange[] | undefined {
  const set = /^bytes=(.*)$/i.exec(header.trim())?.[1];
  if (set === undefined) return undefined;
  const ranges: ByteRange[] = [];
  let specs = 0;
  for (const raw of set.split(',')) {
    const spec = raw.trim();
    if (spec === '') continue;
    specs++;
    const m = /^(\d{0,16})-(\d{0,16})$/.exec(spec);
    if (!m || (m[1] === '' && m[2] === '')) return undefined;
    if (m[1] === '') {
      // A suffix: the last N bytes.
      const n = Number(m[2]);
      if (n > 0 && size > 0) ranges.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    const last = m[2] === '' ? Number.POSITIVE_INFINITY : Number(m[2]);
    if (last < start) return undefined;
    if (start < size) ranges.push({ start, end: Math.min(last, size - 1) });
  }
  if (specs === 0) return undefined;
  return coalesce(ranges);
}

function coalesce(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: ByteRange[] = [];
  for (const r of sorted) {
    const last = merged.at(-1);
    if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged.length === ranges.length ? ranges : merged;
}

const opaque = (tag: string) => tag.trim().replace(/^W\//, '');

/** `If-None-Match` against an ETag, by weak comparison (`*` matches any stored file). */
function noneMatch(header: string, etag: string): boolean {
  return header.split(',').some((t) => t.trim() === '*' || opaque(t) === opaque(etag));
}

/** Last-Modified has whole seconds; compare at that precision. */
const wholeSeconds = (d: Date) => Math.floor(d.getTime() / 1000) * 1000;

/** Whether `If-Range` still names this file: the same strong ETag, or exactly its Last-Modified date. */
function ifRangeHolds(header: string, etag: string, modifiedAt: Date): boolean {
  const v = header.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return !v.startsWith('W/') && v === etag;
  const date = Date.parse(v);
  return Number.isFinite(date) && date === wholeSeconds(modifiedAt);
}

/** Whether a conditional GET may be answered 304. */
function notModified(req: FastifyRequest, etag: string, modifiedAt: Date): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) return noneMatch(inm, etag);
  const ims = req.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && wholeSeconds(modifiedAt) <= since;
}

/** Answers a GET (or HEAD) for a stored file; see the module comment for what is honoured. */
export async function sendDownload(
  req: FastifyRequest,
  reply: FastifyReply,
  download: FileDownload,
): Promise<FastifyReply> {
  // Object storage configured for presigned downloads: the client fetches from the store itself.
  if (download.presignedUrl)
    return reply.header('cache-control', 'no-store').redirect(download.presignedUrl, 302);
  const { file, contentType, fileName } = download;
  const { size, etag, modifiedAt } = file;
  reply
    .header('etag', etag)
    .header('last-modified', modifiedAt.toUTCString())
    .header('accept-ranges', 'bytes');
  if (notModified(req, etag, modifiedAt)) return reply.status(304).send();

  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  const ranges =
    rangeHeader !== undefined &&
    (ifRange === undefined || (typeof ifRange === 'string' && ifRangeHolds(ifRange, etag, modifiedAt)))
      ? parseRanges(rangeHeader, size)
      : undefined;
  if (ranges?.length === 0) {
    reply.header('content-range', `bytes */${size}`);
    throw new AppError('RANGE_NOT_SATISFIABLE', `range ${rangeHeader} is outside the file (${size} bytes)`, {
      size,
    });
  }
  reply.header('content-type', contentType).header('content-disposition', `inline; filename="${fileName}"`);
  if (ranges === undefined || ranges.length > MAX_RANGE_PARTS) {
    reply.header('content-length', size);
    return reply.send(file.open());
  }
  reply.status(206);
  const [only] = ranges;
  if (ranges.length === 1 && only) {
    return reply
      .header('content-range', `bytes ${only.start}-${only.end}/${size}`)
      .header('content-length', only.end - only.start + 1)
      .send(file.open(only));
  }
  const boundary = randomBytes(12).toString('hex');
  const heads = ranges.map((r) =>
    Buffer.from(
      `\r\n--${boundary}\r\ncontent-type: ${contentType}\r\ncontent-range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length =
    heads.reduce((n, h) => n + h.length, 0) +
    ranges.reduce((n, r) => n + r.end - r.start + 1, 0) +
    tail.length;
  const partRanges = ranges;
  async function* parts() {
    for (const [i, r] of partRanges.entries()) {
      yield heads[i] as Buffer;
      yield* file.open(r);
    }
    yield tail;
  }
  return reply
    .header('content-type', `multipart/byteranges; boundary=${boundary}`)
    .header('content-length', length)
    .send(Readable.from(parts(), { objectMode: false }));
}
