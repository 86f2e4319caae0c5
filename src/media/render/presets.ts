import type { Platform } from '../../db/types.js';

export interface RenderPreset {
  width: number;
  height: number;
  fps: number;
}

/** Output sizes per platform, 30 fps. */
export const RENDER_PRESETS: Readonly<Record<Platform, RenderPreset>> = {
  youtube: { width: 1920, height: 1080, fps: 30 },
  instagram: { width: 1080, height: 1350, fps: 30 },
  tiktok: { width: 1080, height: 1920, fps: 30 },
  facebook: { width: 1280, height: 720, fps: 30 },
};

export const RENDER_QUALITIES = ['low', 'medium', 'high'] as const;
export type RenderQuality = (typeof RENDER_QUALITIES)[number];

export interface QualitySettings {
  /** x264 constant rate factor (lower is better). */
  crf: number;
  /** x264 speed preset. */
  x264Preset: string;
  audioKbps: number;
}

/** Slides with captions compress well: faster presets cost little quality here. */
export const QUALITY_SETTINGS: Readonly<Record<RenderQuality, QualitySettings>> = {
  low: { crf: 30, x264Preset: 'ultrafast', audioKbps: 96 },
  medium: { crf: 23, x264Preset: 'ultrafast', audioKbps: 128 },
  high: { crf: 19, x264Preset: 'superfast', audioKbps: 192 },
};
