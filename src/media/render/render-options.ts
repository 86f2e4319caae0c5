import type { ScriptBlock } from '../../db/types.js';

/** What a render request may ask for beyond preset and quality; stored with the render (renders.options). */
export interface RenderOptions {
  /** A title card with the content's title before the first block (2 s). */
  titleCard: boolean;
  /** An end card with this call to action after the last block (2.5 s); null for none. */
  endCard: string | null;
  /** Image backgrounds zoom slowly (100 % to 108 % over the block). */
  zoom: boolean;
  /** Mix the chosen music (the content's, else its campaign's) under the narration (default true). */
  music: boolean;
  /** Draw the client's chosen logo (default true). */
  logo: boolean;
}

export const DEFAULT_RENDER_OPTIONS: RenderOptions = {
  titleCard: false,
  endCard: null,
  zoom: false,
  music: true,
  logo: true,
};

export const TITLE_CARD_S = 2;
export const END_CARD_S = 2.5;

/** The options stored on a render row (rows from before options existed get the defaults). */
export function parseRenderOptions(json: string | null): RenderOptions {
  if (!json) return DEFAULT_RENDER_OPTIONS;
  return { ...DEFAULT_RENDER_OPTIONS, ...(JSON.parse(json) as Partial<RenderOptions>) };
}

/** A block background that names an uploaded asset: `asset:<id>`. */
export function backgroundAssetId(b: Pick<ScriptBlock, 'background'>): number | undefined {
  const m = /^asset:([1-9]\d{0,9})$/.exec(b.background?.trim() ?? '');
  return m?.[1] ? Number(m[1]) : undefined;
}
