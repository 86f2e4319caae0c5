import type { ContentContext } from '../media.repo.js';
import { backgroundAssetId, type RenderOptions } from '../render/render-options.js';
import type { Asset, AssetsRepo } from './assets.repo.js';

/** The uploaded assets a render reads, as the script and the choices name them. */
export interface RenderAssets {
  /** Per block (by id) whose background is `asset:<id>`: that id, and the asset when the client has it. */
  backgrounds: Map<number, { id: number; asset: Asset | undefined }>;
  logo: Asset | undefined;
  music: Asset | undefined;
  /** The ids of every asset found above. */
  ids: number[];
}

/**
 * Inside AssetsRepo.locked: the assets a render of `c` reads now (block
 * backgrounds, the client's logo, the content's or else the campaign's music),
 * those that exist locked against deletes until the step ends. Recorded for
 * the render in the same step (recordRenderAssets), none of them can be
 * deleted while the render is queued or running (AssetService.delete).
 */
export async function lockRenderAssets(
  tx: AssetsRepo,
  c: ContentContext,
  o: Pick<RenderOptions, 'logo' | 'music'>,
): Promise<RenderAssets> {
  const logo = o.logo ? await tx.choice('client', c.client_id, 'logo') : undefined;
  const music = o.music
    ? ((await tx.choice('content', c.content_id, 'music')) ??
      (await tx.choice('campaign', c.campaign_id, 'music')))
    : undefined;
  const named = c.blocks.flatMap((b) => {
    const id = backgroundAssetId(b);
    return id === undefined ? [] : [{ block: b.id, id }];
  });
  const wanted = [...named.map((n) => n.id), ...(logo ? [logo.id] : []), ...(music ? [music.id] : [])];
  const found = new Map((await tx.lockForRender(c.client_id, wanted)).map((a) => [a.id, a]));
  return {
    backgrounds: new Map(named.map((n) => [n.block, { id: n.id, asset: found.get(n.id) }])),
    // A choice whose asset was deleted since it was read is gone with it.
    logo: logo && found.get(logo.id),
    music: music && found.get(music.id),
    ids: [...found.keys()],
  };
}
