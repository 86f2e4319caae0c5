/**
 * Mergeable latency sketches (DDSketch, from @datadog/sketches-js) and their compact JSON form,
 * so processes can publish what they measured per interval and any process can merge them.
 *
 * The library's own serialisation needs protobufjs, which it does not declare; a sketch here is
 * written as its non-empty bins (key, count) instead, read back through the store's `add`.
 * Every sketch uses the same mapping (RELATIVE_ACCURACY), so any two merge.
 */
import { DDSketch } from '@datadog/sketches-js';

/** Quantiles are within 1 % of the exact value (the summary promises 2 %). */
export const RELATIVE_ACCURACY = 0.01;

/** A sketch as published: count, sum, zero count, first key and the counts of consecutive keys from it. */
export interface EncodedSketch {
  n: number;
  s: number;
  z: number;
  k: number;
  b: number[];
}

export const newSketch = (): DDSketch => new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });

export function encodeSketch(sk: DDSketch): EncodedSketch {
  const store = sk.store;
  const b: number[] = [];
  if (store.count > 0)
    for (let key = store.minKey; key <= store.maxKey; key++) b.push(store.bins[key - store.offset] ?? 0);
  return { n: sk.count, s: sk.sum, z: sk.zeroCount, k: store.count > 0 ? store.minKey : 0, b };
}

/** Adds an encoded sketch into `into` (a fresh one when absent) and returns it. */
export function mergeEncoded(e: EncodedSketch, into: DDSketch = newSketch()): DDSketch {
  // Straight into the store: the summary merges thousands of these per request.
  for (let i = 0; i < e.b.length; i++) {
    const c = e.b[i] as number;
    if (c > 0) into.store.add(e.k + i, c);
  }
  into.zeroCount += e.z;
  into.count += e.n;
  into.sum += e.s;
  return into;
}

/** The value at quantile q (0..1), or null for an empty sketch. */
export const quantile = (sk: DDSketch, q: number): number | null =>
  sk.count === 0 ? null : sk.getValueAtQuantile(q);
