/**
 * What the media pipeline reports as it works, for metrics (the telemetry layer implements it;
 * media does not depend on it). Every method is called synchronously and must not throw.
 */
/** One call to a speech vendor, as recorded in ai_api_usage, with how long it took. */
export interface VendorCall {
  provider: string;
  model: string | null;
  operation: string;
  outcome: 'ok' | 'error';
  latencyS: number;
  units: number;
  unit: string;
  /** The cost recorded for it in ai_api_usage, USD (0 for a failed call). */
  costUsd: number;
  campaignId?: number | null;
}

/** One video render, from its start to its upload or failure. */
export interface RenderRun {
  /** The render preset (a key of RENDER_PRESETS). */
  preset: string;
  outcome: 'ok' | 'error';
  seconds: number;
}

export interface MediaObserver {
  vendorCall(call: VendorCall): void;
  /** A narration ended: its TTS provider, final status, attempts made and final similarity. */
  narrationFinished(provider: string, status: string, attempts: number, similarity: number | null): void;
  renderFinished(run: RenderRun): void;
}
