/**
 * Exponentially weighted moving average with a half-life in units of sample weight.
 *
 * Idea (as in shaka-player and hls.js): each sample carries a weight (for throughput, the
 * seconds it took); a sample of weight w shrinks the old estimate by alpha^w, with
 * alpha = 0.5^(1 / halfLife). The estimate is divided by (1 - alpha^totalWeight) so that the
 * zero the average starts from does not bias the first samples ("zero-factor correction").
 */
export class Ewma {
  /** @param {number} halfLife weight after which a sample counts half (seconds for throughput) */
  constructor(halfLife) {
    if (!(halfLife > 0)) throw new RangeError(`half-life must be > 0, got ${halfLife}`);
    this.alpha = Math.exp(Math.log(0.5) / halfLife);
    this.estimate = 0;
    this.totalWeight = 0;
  }

  /** Adds one sample of `value` with `weight` (> 0). */
  sample(weight, value) {
    const adjustedAlpha = Math.pow(this.alpha, weight);
    this.estimate = value * (1 - adjustedAlpha) + adjustedAlpha * this.estimate;
    this.totalWeight += weight;
  }

  /** The zero-corrected average; 0 before any sample. */
  getEstimate() {
    if (this.totalWeight === 0) return 0;
    const zeroFactor = 1 - Math.pow(this.alpha, this.totalWeight);
    return this.estimate / zeroFactor;
  }
}
