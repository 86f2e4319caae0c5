import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { embeddedEnabled } from '../support/backends.js';
import { tempDir } from './media-fixtures.js';

// `omnivibe demo` end to end, as a user runs it: a fresh DATA_DIR, nothing else.
describe.runIf(embeddedEnabled())('omnivibe demo', () => {
  it('seeds a Korean campaign, narrates it and renders a TikTok MP4 in a data directory of its own, printing the path and step timings', () => {
    const dataDir = tempDir('ov-demo-');
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.resolve('src/main/cli.ts'), 'demo'], {
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', REDIS_URL: '', LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(out).toMatch(/narration: succeeded, [\d.]+ s of audio in \d+ ms/);
    const video = /video: +(\S+\.mp4)/.exec(out)?.[1];
    expect(video).toBeDefined();
    // Its own directory under DATA_DIR: a server's database there is left alone.
    expect(video?.startsWith(path.join(dataDir, 'demo', 'media'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'demo', 'omnivibe.db'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'omnivibe.db'))).toBe(false);
    expect(fs.statSync(video ?? '').size).toBeGreaterThan(10_000);
    expect(out).toMatch(/total: +\d+ ms/);
  }, 150_000);
});
