/**
 * A downlink that follows a throughput trace on a virtual clock, looping it like mm-link.
 *
 * The trace is piecewise constant: rate mbps[i] (10^6 bit/s) from starts[i] to the next start,
 * the last segment until durationS. `offsetS` shifts where in the trace the session begins
 * (Pensieve picks a random start point).
 */
export class TraceLink {
  /** @param {{starts: number[], mbps: number[], durationS: number}} trace @param {number} offsetS */
  constructor(trace, offsetS = 0) {
    if (!(trace.durationS > 0) || trace.starts.length !== trace.mbps.length || trace.starts.length === 0) {
      throw new RangeError('trace needs matching starts/mbps arrays and a positive duration');
    }
    this.starts = trace.starts;
    this.bitsPerS = trace.mbps.map((m) => m * 1e6);
    this.durationS = trace.durationS;
    this.offsetS = offsetS;
    const loopBits = this.bitsPerS.reduce((sum, rate, i) => sum + rate * (this.#end(i) - this.starts[i]), 0);
    if (!(loopBits > 0)) throw new RangeError('trace delivers no bits in a whole loop');
    this.loopBits = loopBits;
  }

  #end(i) {
    return i + 1 < this.starts.length ? this.starts[i + 1] : this.durationS;
  }

  /** Index of the segment holding trace position `pos` (0 <= pos < durationS). */
  #segment(pos) {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Rate in bit/s at session time `t`. */
  rateAt(t) {
    const pos = (((t + this.offsetS) % this.durationS) + this.durationS) % this.durationS;
    return this.bitsPerS[this.#segment(pos)];
  }

  /**
   * Seconds needed to deliver `bits` starting at session time `t`. Whole loops are skipped
   * arithmetically, so the walk is bounded by two passes over the trace.
   */
  transferSeconds(t, bits) {
    if (!(bits > 0)) return 0;
    let remaining = bits;
    let elapsed = 0;
    const loops = Math.floor(remaining / this.loopBits);
    if (loops > 0 && remaining - loops * this.loopBits > 0) {
      remaining -= loops * this.loopBits;
      elapsed += loops * this.durationS;
    } else if (loops > 0) {
      remaining -= (loops - 1) * this.loopBits;
      elapsed += (loops - 1) * this.durationS;
    }
    let pos = (((t + elapsed + this.offsetS) % this.durationS) + this.durationS) % this.durationS;
    let i = this.#segment(pos);
    for (let steps = 0; steps <= 2 * this.starts.length + 2; steps++) {
      const end = this.#end(i);
      const span = end - pos;
      const capacity = this.bitsPerS[i] * span;
      if (capacity >= remaining) return elapsed + remaining / this.bitsPerS[i];
      remaining -= capacity;
      elapsed += span;
      i += 1;
      if (i === this.starts.length) i = 0;
      pos = this.starts[i];
    }
    throw new Error('transferSeconds did not converge (trace invariant broken)');
  }
}
