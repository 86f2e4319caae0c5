import type { Platform } from '../../db/types.js';

/**
 * The part of the frame each platform's interface leaves uncovered, as
 * fractions of the frame inset from each edge. TikTok's and Instagram's
 * buttons and descriptions cover the bottom and the right; YouTube and
 * Facebook only need a title-safe margin. Captions and the logo stay inside.
 */
export interface SafeArea {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

export const SAFE_AREAS: Readonly<Record<Platform, SafeArea>> = {
  tiktok: { top: 0.08, bottom: 0.2, left: 0.06, right: 0.16 },
  instagram: { top: 0.06, bottom: 0.14, left: 0.06, right: 0.12 },
  youtube: { top: 0.05, bottom: 0.08, left: 0.05, right: 0.05 },
  facebook: { top: 0.05, bottom: 0.08, left: 0.05, right: 0.05 },
};

/** The safe rectangle in pixels. */
export function safeRect(area: SafeArea, width: number, height: number) {
  const x = Math.round(width * area.left);
  const y = Math.round(height * area.top);
  return {
    x,
    y,
    w: Math.round(width * (1 - area.right)) - x,
    h: Math.round(height * (1 - area.bottom)) - y,
  };
}
