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
  /** When the call started, epoch ms (its span's start). */
  startedAt?: number;
}

/**
 * Spans around the pipeline's steps (tracing; the telemetry layer implements it, the composition
 * roots hand it in). Each wrapper runs `run` inside its span and returns what it returns.
 */
export interface MediaSpans {
  /** One attempt of the Zero-Fault loop; `run` reports the attempt's verdict (score, similarity) through `verdict`. */
  narrationAttempt<T>(
    attempt: { generationId: number; provider: string; attempt: number; maxAttempts: number },
    run: (verdict: (v: { score: number; similarity: number | null }) => void) => Promise<T>,
  ): Promise<T>;
  /** One ffmpeg render with its preset. */
  render<T>(
    render: { renderId: number; preset: string; quality: string; durationS: number },
    run: () => Promise<T>,
  ): Promise<T>;
  /** A vendor call that just ended (TTS, STT), with its billed units and cost: a span over its time. */
  vendorCall(call: VendorCall): void;
  /**
   * One item of a fan-out (an audio.batch content): a trace of its own, linked to the active span,
   * so one batch never grows one trace without bound.
   */
  fanOutItem<T>(item: { task: string; contentId: number }, run: () => Promise<T>): Promise<T>;
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
