/**
 * Seeded pseudo-random numbers (mulberry32): the same seed gives the same session on every
 * machine and Node version, which Math.random cannot promise.
 */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return function next() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform number in [1 - spread, 1 + spread]; exactly 1 when spread is 0 (no draw is wasted). */
export function jitter(random, spread) {
  if (spread === 0) return 1;
  return 1 + spread * (2 * random() - 1);
}
