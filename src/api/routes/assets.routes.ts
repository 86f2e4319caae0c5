/**
 * Uploaded assets: `POST /clients/{id}/assets` (multipart, one `file` part;
 * editor) stores an image, clip, audio file or logo after probing its
 * content; list, get, download (Range, ETag) and delete; and the choices
 * that use them: a client's logo, a campaign's or a content's music.
 */
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../errors.js';
import type { AssetService } from '../../media/assets/asset.service.js';
import type { Asset } from '../../media/assets/assets.repo.js';
import { sendDownload } from '../file-download.js';
import { Id, IdParams, Nullable, StringEnum, errorResponses } from '../schemas.js';

export interface AssetsRoutesOptions {
  assets: AssetService;
  /** Largest upload, bytes (ASSET_MAX_MB). */
  maxBytes: number;
}

const KINDS = ['image', 'logo', 'clip', 'audio'] as const;

const AssetSchema = Type.Object({
  id: Id,
  client_id: Id,
  kind: StringEnum(KINDS),
  mime: Type.String(),
  width: Nullable(Type.Integer()),
  height: Nullable(Type.Integer()),
  duration_s: Nullable(Type.Number()),
  has_alpha: Type.Boolean(),
  size_bytes: Type.Integer(),
  sha256: Type.String(),
  original_name: Nullable(Type.String()),
  created_at: Type.String(),
  download_url: Type.String(),
});

const view = (a: Asset) => ({
  id: a.id,
  client_id: a.client_id,
  kind: a.kind,
  mime: a.mime,
  width: a.width,
  height: a.height,
  duration_s: a.duration_s,
  has_alpha: a.has_alpha === 1,
  size_bytes: Number(a.size_bytes),
  sha256: a.sha256,
  original_name: a.original_name,
  created_at: a.created_at,
  download_url: `/api/v1/assets/${a.id}/download`,
});

const ChoiceBody = Type.Object(
  { asset_id: Nullable(Id) },
  { additionalProperties: false, description: '`asset_id: null` clears the choice' },
);

export const assetsRoutes: FastifyPluginAsyncTypebox<AssetsRoutesOptions> = async (
  app,
  { assets, maxBytes },
) => {
  // Only this plugin parses multipart bodies; files stream (nothing is buffered), one file per request.
  await app.register(multipart, { limits: { fileSize: maxBytes, files: 1, fields: 4, parts: 5 } });
  const tags = ['assets'];

  app.post(
    '/clients/:id/assets',
    {
      schema: {
        tags,
        description:
          'Uploads an asset as `multipart/form-data` with one `file` part. The type is decided from the content (ffprobe), never from the name or declared MIME: PNG, JPEG, WebP images; MP4, MOV, WebM clips; MP3, WAV, AAC/M4A audio. `kind` (query) may state what it should be (`logo` needs a PNG with alpha); a disagreement is refused. 201 with the probed metadata; 200 with the existing asset when this client already uploaded the same bytes. Refusals say why in `error.details.reason`: 415 unknown_type, 413 too_large, 422 mismatched_type / too_many_pixels / too_long / unreadable, 400 upload_incomplete.',
        params: IdParams,
        querystring: Type.Object({ kind: Type.Optional(StringEnum(KINDS)) }, { additionalProperties: false }),
        response: { 200: AssetSchema, 201: AssetSchema, ...errorResponses(400, 404, 413, 415, 422) },
      },
    },
    async (req, reply) => {
      if (!req.isMultipart())
        throw new AppError(
          'UNSUPPORTED_MEDIA_TYPE',
          'send the file as multipart/form-data with a `file` part',
          {
            reason: 'not_multipart',
          },
        );
      const part = await req.file();
      if (!part)
        throw new AppError('VALIDATION_FAILED', 'file: the form has no file part', { field: 'file' });
      const { asset, created } = await assets.upload(req.params.id, {
        stream: part.file,
        filename: part.filename,
        declaredKind: req.query.kind,
        truncated: () => part.file.truncated,
      });
      return reply.status(created ? 201 : 200).send(view(asset));
    },
  );

  app.get(
    '/clients/:id/assets',
    {
      schema: {
        tags,
        params: IdParams,
        querystring: Type.Object({ kind: Type.Optional(StringEnum(KINDS)) }, { additionalProperties: false }),
        response: { 200: Type.Object({ items: Type.Array(AssetSchema) }), ...errorResponses(404) },
      },
    },
    async (req) => ({ items: (await assets.list(req.params.id, req.query.kind)).map(view) }),
  );

  app.get(
    '/assets/:id',
    { schema: { tags, params: IdParams, response: { 200: AssetSchema, ...errorResponses(404) } } },
    async (req) => view(await assets.get(req.params.id)),
  );

  app.get(
    '/assets/:id/download',
    {
      schema: {
        tags,
        description: 'The stored bytes (Range, ETag; a 302 to a presigned URL when S3 presigning is on).',
        params: IdParams,
        response: errorResponses(404, 416),
      },
    },
    async (req, reply) => sendDownload(req, reply, await assets.download(req.params.id)),
  );

  app.delete(
    '/assets/:id',
    {
      schema: {
        tags,
        description:
          'Deletes an asset (and its stored bytes when no other client shares them). 409 while a queued or running render uses it; finished renders are not affected.',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(404, 409) },
      },
    },
    async (req, reply) => {
      await assets.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );

  const choice = (
    path: string,
    owner: 'client' | 'campaign' | 'content',
    role: 'logo' | 'music',
    what: string,
  ) =>
    app.put(
      path,
      {
        schema: {
          tags,
          description: what,
          params: IdParams,
          body: ChoiceBody,
          response: { 204: Type.Null(), ...errorResponses(400, 404, 422) },
        },
      },
      async (req, reply) => {
        await assets.choose(owner, req.params.id, role, req.body.asset_id);
        return reply.status(204).send(null);
      },
    );
  choice(
    '/clients/:id/logo',
    'client',
    'logo',
    "Chooses the client's logo (a PNG asset with alpha), drawn on its renders.",
  );
  choice(
    '/campaigns/:id/music',
    'campaign',
    'music',
    "Chooses the campaign's background music (an audio asset).",
  );
  choice(
    '/contents/:id/music',
    'content',
    'music',
    "Chooses a content's background music (an audio asset); it wins over the campaign's.",
  );
};
