/**
 * Object storage for tests. By default an S3-compatible server
 * (@20minutes/s3rver: the S3 REST protocol over HTTP, SigV4-signed requests,
 * multipart uploads, ranged GETs, files in a temp directory) on a random
 * loopback port, in this process. With TEST_MEDIA_STORAGE_URL set
 * (`s3://bucket/prefix`, plus TEST_MEDIA_S3_ENDPOINT for a non-AWS endpoint
 * and the usual AWS_* credentials), the same tests run against that real
 * endpoint instead, each under its own random prefix.
 */
import { randomUUID } from 'node:crypto';
import S3rver from '@20minutes/s3rver';
import { tempDir } from '../media/media-fixtures.js';

export interface S3TestTarget {
  /** The media variables that point a process at this storage (add to its env). */
  env: Record<string, string>;
  /** Which server it is, for test names and reports. */
  label: string;
  stop(): Promise<void>;
}

const BUCKET = 'ov-media';
/** s3rver's built-in account. */
const S3RVER_KEY = 'S3RVER';

/**
 * The SDK warns once per process that its releases after January 2027 need
 * Node 22; that is for operators (docs/media.md says it), not test output.
 */
const QUIET_SDK = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

export async function startS3(): Promise<S3TestTarget> {
  Object.assign(process.env, QUIET_SDK);
  const prefix = `test-${randomUUID().slice(0, 8)}`;
  const real = process.env.TEST_MEDIA_STORAGE_URL;
  if (real) {
    const env: Record<string, string> = {
      MEDIA_STORAGE_URL: `${real.replace(/\/+$/, '')}/${prefix}`,
      ...QUIET_SDK,
    };
    if (process.env.TEST_MEDIA_S3_ENDPOINT) env.MEDIA_S3_ENDPOINT = process.env.TEST_MEDIA_S3_ENDPOINT;
    return { env, label: real, stop: async () => undefined };
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: tempDir('ov-s3rver-'),
    vhostBuckets: false,
    configureBuckets: [{ name: BUCKET }],
  });
  const addr = await server.run();
  // The SDK's default credential chain reads these; child processes get them through `env`.
  const creds = { AWS_ACCESS_KEY_ID: S3RVER_KEY, AWS_SECRET_ACCESS_KEY: S3RVER_KEY, AWS_REGION: 'us-east-1' };
  Object.assign(process.env, creds);
  return {
    env: {
      MEDIA_STORAGE_URL: `s3://${BUCKET}/${prefix}`,
      MEDIA_S3_ENDPOINT: `http://127.0.0.1:${addr.port}`,
      ...creds,
      ...QUIET_SDK,
    },
    label: 's3rver',
    stop: () => server.close(),
  };
}
