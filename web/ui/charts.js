/**
 * Small live line charts on a canvas: the last CHART_POINTS samples (one a second), the y axis
 * from 0 to a round number above the largest sample. The canvas carries the axis labels (its
 * maximum and 0, with the unit); the caption names the quantity, its latest value and the axis.
 */

export const CHART_POINTS = 120; // samples kept (two minutes at one per second)
const LABEL_FONT = '10px system-ui, sans-serif';
const LABEL_ROOM = 12; // pixels above the plot for the axis maximum's label

/** The smallest 1, 2 or 5 x 10^k that is >= value (the axis maximum). */
export function niceCeil(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value - 1e-12 * power) return step * power;
  }
  return 10 * power;
}

export class LiveChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{color: string, title: string, unit: string, digits?: number, minMax?: number,
   *          caption?: HTMLElement|null}} options
   *   title: what is plotted ("buffer"); unit: its unit ("s"); digits: decimals of the latest
   *   value; minMax: the y axis shows at least [0, minMax]; caption: where the text goes
   */
  constructor(canvas, { color, title, unit, digits = 1, minMax = 1, caption = null }) {
    this.canvas = canvas;
    this.color = color;
    this.title = title;
    this.unit = unit;
    this.digits = digits;
    this.minMax = minMax;
    this.caption = caption;
    this.values = [];
  }

  /** The newest sample that is a number (null when none). */
  get latest() {
    for (let i = this.values.length - 1; i >= 0; i--) if (this.values[i] !== null) return this.values[i];
    return null;
  }

  /** The y axis maximum. */
  get top() {
    return niceCeil(Math.max(this.minMax, ...this.values.filter((v) => v !== null)));
  }

  /** Another quantity from now on (e.g. PSNR dB where SSIM was not measured). */
  setQuantity(title, unit = this.unit) {
    if (title === this.title && unit === this.unit) return;
    this.title = title;
    this.unit = unit;
    this.clear();
  }

  /** Adds a sample (null = a gap) and redraws. */
  push(value) {
    this.values.push(value === null || value === undefined || !Number.isFinite(value) ? null : value);
    if (this.values.length > CHART_POINTS) this.values.shift();
    this.draw();
  }

  clear() {
    this.values = [];
    this.draw();
  }

  captionText() {
    const latest = this.latest;
    const now = latest === null ? 'no value yet' : `now ${latest.toFixed(this.digits)} ${this.unit}`;
    return `${this.title}: ${now}; axis 0 to ${this.top} ${this.unit}, last ${CHART_POINTS / 60} min`;
  }

  draw() {
    if (this.caption !== null) this.caption.textContent = this.captionText();
    const { canvas } = this;
    const ctx = canvas.getContext('2d');
    const { width, height } = canvas;
    const top = this.top;
    const plotHeight = height - LABEL_ROOM;
    const yOf = (value) => height - (value / top) * plotHeight;
    ctx.clearRect(0, 0, width, height);
    // the axis: its maximum (a dashed guide with its label) and 0
    ctx.strokeStyle = '#ddd';
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(0, yOf(top));
    ctx.lineTo(width, yOf(top));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#888';
    ctx.font = LABEL_FONT;
    ctx.fillText(`${top} ${this.unit}`, 2, 10);
    ctx.fillText('0', 2, height - 2);
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    let last = null;
    this.values.forEach((value, i) => {
      if (value === null) {
        drawing = false;
        return;
      }
      const x = (i / (CHART_POINTS - 1)) * width;
      const y = yOf(value);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
      last = [x, y];
    });
    ctx.stroke();
    if (last !== null) {
      // the latest value: a dot at the end of the line
      ctx.fillStyle = this.color;
      ctx.beginPath();
      ctx.arc(last[0], last[1], 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}
