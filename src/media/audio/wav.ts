/**
 * 16-bit PCM audio in memory and the WAV container. Every provider's output is
 * converted to this so blocks can be concatenated, timed and analysed without ffmpeg.
 */
export interface PcmAudio {
  sampleRate: number;
  /** Mono samples, signed 16-bit. */
  samples: Int16Array;
}

export class WavFormatError extends Error {
  override name = 'WavFormatError';
}

export const durationS = (a: PcmAudio) => a.samples.length / a.sampleRate;

/**
 * Parses a RIFF/WAVE file with 16-bit PCM (any channel count; mixed down to mono).
 * A data size of 0 or 0xFFFFFFFF (streamed WAVs, as some vendors send) means "to the end".
 */
export function parseWav(buf: Uint8Array): PcmAudio {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (at: number) => String.fromCharCode(...buf.subarray(at, at + 4));
  if (buf.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE')
    throw new WavFormatError('not a RIFF/WAVE file');
  let at = 12;
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined;
  while (at + 8 <= buf.byteLength) {
    const id = tag(at);
    let size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      fmt = {
        format: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!fmt) throw new WavFormatError('data chunk before fmt chunk');
      // 0xFFFE is WAVE_FORMAT_EXTENSIBLE; its sub-format is PCM for 16-bit integer data.
      if ((fmt.format !== 1 && fmt.format !== 0xfffe) || fmt.bits !== 16)
        throw new WavFormatError(
          `unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits); 16-bit PCM expected`,
        );
      if (size === 0 || size === 0xffffffff || body + size > buf.byteLength) size = buf.byteLength - body;
      return pcmFromS16le(buf.subarray(body, body + size), fmt.sampleRate, fmt.channels);
    }
    at = body + size + (size % 2);
  }
  throw new WavFormatError('no data chunk');
}

/** Raw signed 16-bit little-endian PCM (as ElevenLabs' pcm_* formats) to mono PcmAudio. */
export function pcmFromS16le(bytes: Uint8Array, sampleRate: number, channels = 1): PcmAudio {
  const frames = Math.floor(bytes.byteLength / (2 * channels));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += view.getInt16((i * channels + c) * 2, true);
    samples[i] = Math.round(sum / channels);
  }
  return { sampleRate, samples };
}

export function encodeWav(a: PcmAudio): Buffer {
  const dataBytes = a.samples.length * 2;
  const out = Buffer.alloc(44 + dataBytes);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + dataBytes, 4);
  out.write('WAVE', 8, 'ascii');
  out.write('fmt ', 12, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(a.sampleRate, 24);
  out.writeUInt32LE(a.sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < a.samples.length; i++) out.writeInt16LE(a.samples[i] ?? 0, 44 + i * 2);
  return out;
}

export function silence(sampleRate: number, seconds: number): PcmAudio {
  return { sampleRate, samples: new Int16Array(Math.max(0, Math.round(seconds * sampleRate))) };
}

/** Linear-interpolation resampling; used only when providers disagree on the rate. */
export function resample(a: PcmAudio, sampleRate: number): PcmAudio {
  if (a.sampleRate === sampleRate) return a;
  const n = Math.round((a.samples.length * sampleRate) / a.sampleRate);
  const out = new Int16Array(n);
  const step = a.sampleRate / sampleRate;
  for (let i = 0; i < n; i++) {
    const x = i * step;
    const i0 = Math.floor(x);
    const s0 = a.samples[i0] ?? 0;
    const s1 = a.samples[i0 + 1] ?? s0;
    out[i] = Math.round(s0 + (s1 - s0) * (x - i0));
  }
  return { sampleRate, samples: out };
}

export function concat(parts: PcmAudio[]): PcmAudio {
  const rate = parts[0]?.sampleRate ?? 22050;
  const same = parts.map((p) => resample(p, rate));
  const out = new Int16Array(same.reduce((n, p) => n + p.samples.length, 0));
  let at = 0;
  for (const p of same) {
    out.set(p.samples, at);
    at += p.samples.length;
  }
  return { sampleRate: rate, samples: out };
}

/** Level and continuity measurements the acoustic verifier judges. */
export interface AudioAnalysis {
  durationS: number;
  /** Root mean square level, dBFS (-Infinity for digital silence). */
  rmsDbfs: number;
  peakDbfs: number;
  /** Fraction of samples at full scale. */
  clippedRatio: number;
  /** Longest run of silence between the first and last sound, seconds. */
  longestInternalSilenceS: number;
  leadingSilenceS: number;
  trailingSilenceS: number;
}

const dbfs = (v: number) => (v <= 0 ? Number.NEGATIVE_INFINITY : 20 * Math.log10(v / 32768));

/** Measures the audio in 20 ms windows; a window is silent below `silenceDbfs` (default -50 dBFS). */
export function analyse(a: PcmAudio, silenceDbfs = -50): AudioAnalysis {
  const n = a.samples.length;
  let sumSq = 0;
  let peak = 0;
  let clipped = 0;
  for (let i = 0; i < n; i++) {
    const s = a.samples[i] ?? 0;
    sumSq += s * s;
    const abs = Math.abs(s);
    if (abs > peak) peak = abs;
    if (abs >= 32767) clipped++;
  }
  const win = Math.max(1, Math.round(a.sampleRate * 0.02));
  const windows: boolean[] = [];
  for (let start = 0; start < n; start += win) {
    let sq = 0;
    const end = Math.min(n, start + win);
    for (let i = start; i < end; i++) sq += (a.samples[i] ?? 0) ** 2;
    windows.push(dbfs(Math.sqrt(sq / (end - start))) > silenceDbfs);
  }
  const first = windows.indexOf(true);
  const last = windows.lastIndexOf(true);
  let longest = 0;
  let run = 0;
  for (let w = first; first >= 0 && w <= last; w++) {
    run = windows[w] ? 0 : run + 1;
    if (run > longest) longest = run;
  }
  const winS = win / a.sampleRate;
  return {
    durationS: n / a.sampleRate,
    rmsDbfs: n === 0 ? Number.NEGATIVE_INFINITY : dbfs(Math.sqrt(sumSq / n)),
    peakDbfs: dbfs(peak),
    clippedRatio: n === 0 ? 0 : clipped / n,
    longestInternalSilenceS: longest * winS,
    leadingSilenceS: first < 0 ? n / a.sampleRate : first * winS,
    trailingSilenceS: last < 0 ? 0 : Math.max(0, (windows.length - 1 - last) * winS),
  };
}
