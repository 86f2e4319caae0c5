/**
 * What a sandbox child's media pipeline measures reaches its worker's metrics as reports over the
 * sandbox socket (children listen on no port and keep no metrics of their own): the child's
 * MediaObserver sends each observation, the worker checks its shape and applies it.
 */
import type { MediaObserver, RenderRun, VendorCall } from '../media/media-observer.js';

export type MediaReport =
  | { kind: 'vendor_call'; call: VendorCall }
  | { kind: 'narration'; provider: string; status: string; attempts: number; similarity: number | null }
  | { kind: 'render'; run: RenderRun };

/** The child's observer: every observation becomes a report to the worker. */
export function reportingObserver(send: (report: MediaReport) => void): MediaObserver {
  return {
    vendorCall: (call) => send({ kind: 'vendor_call', call }),
    narrationFinished: (provider, status, attempts, similarity) =>
      send({ kind: 'narration', provider, status, attempts, similarity }),
    renderFinished: (run) => send({ kind: 'render', run }),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function isVendorCall(v: unknown): v is VendorCall {
  return (
    isObject(v) &&
    isString(v.provider) &&
    (v.model === null || isString(v.model)) &&
    isString(v.operation) &&
    (v.outcome === 'ok' || v.outcome === 'error') &&
    isNumber(v.latencyS) &&
    isNumber(v.units) &&
    isString(v.unit) &&
    isNumber(v.costUsd)
  );
}

function isRenderRun(v: unknown): v is RenderRun {
  return (
    isObject(v) && isString(v.preset) && (v.outcome === 'ok' || v.outcome === 'error') && isNumber(v.seconds)
  );
}

/** Applies a child's report to the worker's observer; false (nothing applied) for anything else. */
export function applyMediaReport(observer: MediaObserver, report: unknown): boolean {
  if (!isObject(report)) return false;
  if (report.kind === 'vendor_call' && isVendorCall(report.call)) {
    observer.vendorCall(report.call);
    return true;
  }
  if (
    report.kind === 'narration' &&
    isString(report.provider) &&
    isString(report.status) &&
    isNumber(report.attempts) &&
    (report.similarity === null || isNumber(report.similarity))
  ) {
    observer.narrationFinished(report.provider, report.status, report.attempts, report.similarity);
    return true;
  }
  if (report.kind === 'render' && isRenderRun(report.run)) {
    observer.renderFinished(report.run);
    return true;
  }
  return false;
}
