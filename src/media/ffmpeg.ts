import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type FfmpegErrorKind = 'not_found' | 'failed' | 'timeout' | 'killed' | 'aborted';

export class FfmpegError extends Error {
  override name = 'FfmpegError';
  constructor(
    readonly kind: FfmpegErrorKind,
    message: string,
    /** The last lines ffmpeg wrote to stderr. */
    readonly stderrTail: string = '',
    readonly exitCode: number | null = null,
  ) {
    super(stderrTail ? `${message}\n--- ffmpeg stderr (tail) ---\n${stderrTail}` : message);
  }
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    // Not executable or missing: the caller tries the next candidate.
    return false;
  }
}

function onPath(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

function fromNpm(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@ffmpeg-installer/ffmpeg') as { path?: string };
    return mod.path && executable(mod.path) ? mod.path : undefined;
  } catch {
    // The package throws at require time when it ships no binary for this platform: not available.
    return undefined;
  }
}

export interface FfmpegLocation {
  path: string;
  source: 'FFMPEG_PATH' | 'system' | 'npm';
}

/**
 * Finds ffmpeg: FFMPEG_PATH when set (and then only it), else `ffmpeg` on PATH,
 * else the binary shipped by @ffmpeg-installer/ffmpeg. Throws FfmpegError('not_found').
 */
export function locateFfmpeg(configured: string | undefined, envPath?: string): FfmpegLocation {
  if (configured) {
    if (executable(configured)) return { path: configured, source: 'FFMPEG_PATH' };
    throw new FfmpegError('not_found', `FFMPEG_PATH=${configured} is not an executable file`);
  }
  const system = onPath('ffmpeg', envPath);
  if (system) return { path: system, source: 'system' };
  const npm = fromNpm();
  if (npm) return { path: npm, source: 'npm' };
  throw new FfmpegError(
    'not_found',
    'ffmpeg not found: set FFMPEG_PATH, install ffmpeg, or install the @ffmpeg-installer/ffmpeg package',
  );
}

/**
 * Finds ffprobe (asset probing): beside the ffmpeg in use, else on PATH.
 * The npm ffmpeg package ships no ffprobe, so with only it, uploads cannot be probed.
 */
export function locateFfprobe(ffmpegPath: string | undefined, envPath?: string): string {
  if (ffmpegPath) {
    const sibling = path.join(
      path.dirname(ffmpegPath),
      path.basename(ffmpegPath).replace(/ffmpeg/, 'ffprobe'),
    );
    if (sibling !== ffmpegPath && executable(sibling)) return sibling;
  }
  const system = onPath('ffprobe', envPath);
  if (system) return system;
  throw new FfmpegError(
    'not_found',
    'ffprobe not found: install ffmpeg (with ffprobe) or put ffprobe beside FFMPEG_PATH',
  );
}

export interface RunFfmpegOptions {
  ffmpeg: string;
  args: string[];
  /** Killed (SIGKILL) after this long, ms. */
  timeoutMs: number;
  /** Output time reached, seconds, from `-progress pipe:1`. */
  onProgress?: (outTimeS: number) => void;
  signal?: AbortSignal;
  /** Called with the child's pid once spawned (tests kill it). */
  onSpawn?: (pid: number) => void;
}

const TAIL_CHARS = 4000;

/** Runs ffmpeg with machine-readable progress; rejects with FfmpegError carrying stderr's tail. */
export function runFfmpeg(opts: RunFfmpegOptions): Promise<{ stderrTail: string }> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted)
      return reject(new FfmpegError('aborted', 'render aborted before ffmpeg started'));
    const args = ['-hide_banner', '-nostdin', '-y', '-progress', 'pipe:1', '-nostats', ...opts.args];
    const child = spawn(opts.ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdoutBuf = '';
    let timedOut = false;
    let aborted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('spawn', () => {
      if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-TAIL_CHARS * 2);
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdoutBuf += d;
      const lines = stdoutBuf.split('\n');
      stdoutBuf = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^out_time_us=(\d+)/.exec(line) ?? /^out_time_ms=(\d+)/.exec(line);
        if (m?.[1]) opts.onProgress?.(Number(m[1]) / 1e6);
      }
    });
    const tail = () => stderr.slice(-TAIL_CHARS).trim();
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(
        err.code === 'ENOENT'
          ? new FfmpegError('not_found', `ffmpeg not found at ${opts.ffmpeg}`)
          : new FfmpegError('failed', `ffmpeg could not start: ${err.message}`),
      );
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (code === 0) return resolve({ stderrTail: tail() });
      if (timedOut)
        return reject(
          new FfmpegError('timeout', `ffmpeg killed after the ${opts.timeoutMs} ms timeout`, tail(), code),
        );
      if (aborted) return reject(new FfmpegError('aborted', 'ffmpeg stopped: render aborted', tail(), code));
      if (sig) return reject(new FfmpegError('killed', `ffmpeg was killed by ${sig}`, tail(), code));
      reject(new FfmpegError('failed', `ffmpeg exited with code ${code}`, tail(), code));
    });
  });
}
