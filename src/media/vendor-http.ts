import type { RetryPolicy } from '../config/media.js';
/**
 * HTTP calls to paid vendors (TTS, STT) with a timeout per attempt and retries:
 * 429, 5xx, timeouts and connection failures are retried with exponential
 * backoff and jitter, honouring `Retry-After`; 401/403 and other 4xx are
 * permanent. Errors say which: `VendorError.retryable`.
 */

export type VendorErrorKind =
  'auth' | 'rejected' | 'rate_limited' | 'unavailable' | 'timeout' | 'network' | 'bad_response';

export class VendorError extends Error {
  override name = 'VendorError';
  constructor(
    readonly vendor: string,
    readonly kind: VendorErrorKind,
    message: string,
    readonly status?: number,
    /** When retrying is pointless (bad key, rejected input). */
    readonly retryable: boolean = kind !== 'auth' && kind !== 'rejected' && kind !== 'bad_response',
    /** The vendor's requested wait before the next attempt, ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  timeoutMs: 60_000,
  maxRetries: 3,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
};

export interface VendorRequest {
  vendor: string;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A fresh body per attempt (FormData and streams cannot be resent). */
  body?: () => string | FormData | Uint8Array;
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** Called before each retry (for logs and tests). */
  onRetry?: (info: { attempt: number; delayMs: number; error: VendorError }) => void;
}

/** Parses Retry-After: delta seconds or an HTTP date; undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

async function errorFromResponse(vendor: string, res: Response): Promise<VendorError> {
  const text = (await res.text().catch((err: unknown) => `(body unreadable: ${String(err)})`)).slice(0, 500);
  const detail = `${vendor} answered ${res.status}: ${text}`;
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  if (res.status === 401 || res.status === 403) return new VendorError(vendor, 'auth', detail, res.status);
  if (res.status === 429)
    return new VendorError(vendor, 'rate_limited', detail, res.status, true, retryAfterMs);
  if (res.status >= 500)
    return new VendorError(vendor, 'unavailable', detail, res.status, true, retryAfterMs);
  return new VendorError(vendor, 'rejected', detail, res.status);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Performs the request with the policy's retries; resolves with a 2xx Response or throws VendorError. */
export async function vendorFetch(req: VendorRequest): Promise<Response> {
  const { policy } = req;
  for (let attempt = 0; ; attempt++) {
    let error: VendorError;
    const timeout = AbortSignal.timeout(policy.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      const res = await fetch(req.url, {
        method: req.method ?? 'POST',
        headers: req.headers,
        body: req.body?.(),
        signal,
      });
      if (res.ok) return res;
      error = await errorFromResponse(req.vendor, res);
    } catch (err) {
      if (req.signal?.aborted) throw err;
      error = timeout.aborted
        ? new VendorError(req.vendor, 'timeout', `${req.vendor} did not answer within ${policy.timeoutMs} ms`)
        : new VendorError(req.vendor, 'network', `${req.vendor} unreachable: ${(err as Error).message}`);
    }
    if (!error.retryable || attempt >= policy.maxRetries) throw error;
    const backoff = policy.baseDelayMs * 2 ** attempt * (0.75 + Math.random() * 0.5);
    const delayMs = Math.round(error.retryAfterMs ?? Math.min(backoff, policy.maxDelayMs));
    // The vendor asks for a longer pause than we hold a worker for: hand the wait to the job system.
    if (delayMs > policy.maxDelayMs) throw error;
    req.onRetry?.({ attempt: attempt + 1, delayMs, error });
    await sleep(delayMs, req.signal);
  }
}

/** Reads a successful response's body, bounded by the same timeout as the request. */
export async function readBody(vendor: string, res: Response): Promise<Uint8Array> {
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    throw new VendorError(vendor, 'network', `${vendor} response body failed: ${(err as Error).message}`);
  }
}
