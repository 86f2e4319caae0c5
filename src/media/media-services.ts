import type { Logger } from 'pino';
import type { Db, Dialect } from '../db/types.js';
import type { ChangeNotifier } from '../domain/changes.js';
import { AssetService } from './assets/asset.service.js';
import { AssetsRepo } from './assets/assets.repo.js';
import { FfmpegError, locateFfmpeg, locateFfprobe } from './ffmpeg.js';
import type { MediaConfig, TtsProviderName } from '../config/media.js';
import { MediaRepo } from './media.repo.js';
import type { MediaObserver, MediaSpans } from './media-observer.js';
import { NarrationService } from './narration.service.js';
import { RenderService } from './render/render.service.js';
import { defaultFontFile } from './render/renderer.js';
import { createMediaStore } from './storage/create-store.js';
import type { MediaStore } from './storage/media-store.js';
import { AcousticVerifier } from './stt/acoustic.verifier.js';
import { OpenAiSttVerifier } from './stt/openai-stt.verifier.js';
import type { Verifier } from './stt/verifier.js';
import { ElevenLabsProvider } from './tts/elevenlabs.provider.js';
import { EspeakProvider } from './tts/espeak.provider.js';
import { OPENAI_VOICES, OpenAiTtsProvider } from './tts/openai.provider.js';
import type { TtsProvider } from './tts/tts-provider.js';

export interface MediaServices {
  config: MediaConfig;
  repo: MediaRepo;
  /** Where media files live (local directory or S3); this process's own scratch is config.scratchDir. */
  storage: MediaStore;
  /** Configured TTS providers by name: espeak always; openai / elevenlabs when a key or a base URL is set. */
  tts: ReadonlyMap<string, TtsProvider>;
  verifier: Verifier;
  narration: NarrationService;
  renders: RenderService;
  /** Uploaded assets (images, clips, audio, logos) and the logo/music chosen on clients, campaigns, contents. */
  assets: AssetService;
  assetsRepo: AssetsRepo;
  /** The ffmpeg binary, or undefined with the reason in `ffmpegError`. */
  ffmpegPath: string | undefined;
  ffmpegError: string | undefined;
  /** Spans around pipeline steps, for tasks that open their own (audio.batch items); absent with tracing off. */
  spans: MediaSpans | undefined;
  close(): Promise<void>;
}

const DEFAULT_OPENAI_BASE = 'https://api.openai.com/v1';
const DEFAULT_ELEVENLABS_BASE = 'https://api.elevenlabs.io';

export function createTtsProviders(config: MediaConfig): Map<TtsProviderName, TtsProvider> {
  const map = new Map<TtsProviderName, TtsProvider>();
  map.set('espeak', new EspeakProvider(config.espeak));
  if (config.openai.apiKey || config.openai.baseUrl !== DEFAULT_OPENAI_BASE)
    map.set(
      'openai',
      new OpenAiTtsProvider({
        baseUrl: config.openai.baseUrl,
        apiKey: config.openai.apiKey,
        model: config.openai.ttsModel,
        defaultVoice: config.openai.ttsVoice,
        voices: [...new Set([...OPENAI_VOICES, config.openai.ttsVoice])],
        policy: config.vendorPolicy,
      }),
    );
  if (config.elevenlabs.apiKey || config.elevenlabs.baseUrl !== DEFAULT_ELEVENLABS_BASE)
    map.set(
      'elevenlabs',
      new ElevenLabsProvider({
        baseUrl: config.elevenlabs.baseUrl,
        apiKey: config.elevenlabs.apiKey,
        model: config.elevenlabs.model,
        defaultVoiceId: config.elevenlabs.voiceId,
        policy: config.vendorPolicy,
      }),
    );
  return map;
}

export function createVerifier(config: MediaConfig): Verifier {
  return config.verifier === 'openai'
    ? new OpenAiSttVerifier({
        baseUrl: config.stt.baseUrl,
        apiKey: config.stt.apiKey,
        model: config.stt.model,
        policy: config.vendorPolicy,
      })
    : new AcousticVerifier();
}

/** Builds the media pipeline's services for one process (composition roots call this, once). */
export interface MediaServicesOptions {
  /** Told when narration or a render changes a content's status, and when vendor calls are recorded. */
  changes: ChangeNotifier;
  /** Told of vendor calls, narrations and renders (metrics). */
  observer?: MediaObserver;
  /** Spans for narration attempts, vendor calls and renders (tracing on). */
  spans?: MediaSpans;
}

export function createMediaServices(
  config: MediaConfig,
  db: Db,
  dialect: Dialect,
  logger: Logger,
  opts: MediaServicesOptions,
): MediaServices {
  const repo = new MediaRepo(db, dialect, opts.changes);
  const storage = createMediaStore(config.storage);
  const tts = createTtsProviders(config);
  const verifier = createVerifier(config);
  let ffmpegPath: string | undefined;
  let ffmpegError: string | undefined;
  try {
    ffmpegPath = locateFfmpeg(config.render.ffmpegPath).path;
  } catch (err) {
    if (!(err instanceof FfmpegError)) throw err;
    ffmpegError = err.message;
    logger.warn({ err }, 'ffmpeg unavailable: no compressed narration copies and no renders');
  }
  let ffprobePath: string | undefined;
  let ffprobeError: string | undefined;
  try {
    ffprobePath = locateFfprobe(ffmpegPath);
  } catch (err) {
    if (!(err instanceof FfmpegError)) throw err;
    ffprobeError = err.message;
    logger.warn({ err }, 'ffprobe unavailable: asset uploads are refused');
  }
  const assetsRepo = new AssetsRepo(db, dialect);
  const assets = new AssetService({
    repo: assetsRepo,
    storage,
    scratchDir: config.scratchDir,
    ffprobePath,
    ffprobeError,
    limits: config.assets,
    logger,
  });
  const narration = new NarrationService({
    repo,
    storage,
    scratchDir: config.scratchDir,
    tts,
    verifier,
    prices: config.prices,
    ffmpegPath,
    logger,
    defaults: config.narration,
    observer: opts.observer,
    spans: opts.spans,
  });
  const renders = new RenderService({
    repo,
    assets: assetsRepo,
    storage,
    scratchDir: config.scratchDir,
    narration,
    ffmpegPath,
    ffmpegError,
    fontFile: config.render.fontPath ?? defaultFontFile(),
    timeoutMs: config.render.timeoutMs,
    logger,
    observer: opts.observer,
    spans: opts.spans,
  });
  return {
    config,
    repo,
    storage,
    tts,
    verifier,
    narration,
    renders,
    assets,
    assetsRepo,
    ffmpegPath,
    ffmpegError,
    spans: opts.spans,
    async close() {
      await Promise.all([...tts.values()].map((t) => t.close()));
      storage.close();
    },
  };
}
