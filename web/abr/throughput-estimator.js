/**
 * Network throughput estimator: a fast and a slow EWMA over chunk transfers, reporting the
 * minimum of the two, so the estimate falls quickly and rises slowly (dash.js and hls.js
 * both do this; dash.js uses half-lives of 3 s and 8 s). Knows nothing about levels; time is
 * passed in as the transfer's duration, never read from a clock.
 */
import { Ewma } from './ewma.js';

export const FAST_HALF_LIFE_S = 3; // seconds of transfer time
export const SLOW_HALF_LIFE_S = 8; // seconds of transfer time
export const MIN_SAMPLE_S = 0.05; // transfers faster than 50 ms are counted as 50 ms (timer noise)

export class ThroughputEstimator {
  /**
   * @param {{fastHalfLifeS?: number, slowHalfLifeS?: number, defaultKbps?: number|null}} [options]
   *   defaultKbps: what estimateKbps() returns before any sample (null = "unknown").
   */
  constructor({ fastHalfLifeS = FAST_HALF_LIFE_S, slowHalfLifeS = SLOW_HALF_LIFE_S, defaultKbps = null } = {}) {
    this.fastHalfLifeS = fastHalfLifeS;
    this.slowHalfLifeS = slowHalfLifeS;
    this.defaultKbps = defaultKbps;
    this.reset();
  }

  /** Records one transfer of `bytes` that took `seconds` (seconds <= 0 is clamped). */
  addSample(seconds, bytes) {
    if (!(bytes > 0)) return;
    const durationS = Math.max(seconds, MIN_SAMPLE_S);
    const kbps = (8 * bytes) / durationS / 1000;
    this.fast.sample(durationS, kbps);
    this.slow.sample(durationS, kbps);
    this.samples += 1;
  }

  /** min(fast, slow) in kbit/s, or `defaultKbps` before the first sample. */
  estimateKbps() {
    if (this.samples === 0) return this.defaultKbps;
    return Math.min(this.fast.getEstimate(), this.slow.getEstimate());
  }

  /** Forgets every sample (a new network path, e.g. after reconnecting). */
  reset() {
    this.fast = new Ewma(this.fastHalfLifeS);
    this.slow = new Ewma(this.slowHalfLifeS);
    this.samples = 0;
  }
}
