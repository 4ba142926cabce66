/** Small live line charts on a canvas: the last CHART_POINTS samples, autoscaled. */

export const CHART_POINTS = 120; // samples kept (two minutes at one per second)

export class LiveChart {
  /** @param {HTMLCanvasElement} canvas @param {{color: string, minMax?: number}} options */
  constructor(canvas, { color, minMax = 1 }) {
    this.canvas = canvas;
    this.color = color;
    this.minMax = minMax; // the y axis shows at least [0, minMax]
    this.values = [];
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

  draw() {
    const { canvas } = this;
    const ctx = canvas.getContext('2d');
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const numbers = this.values.filter((v) => v !== null);
    const top = Math.max(this.minMax, ...numbers) * 1.1;
    ctx.fillStyle = '#888';
    ctx.font = '10px system-ui, sans-serif';
    ctx.fillText(top.toFixed(top < 10 ? 1 : 0), 2, 10);
    const last = numbers.length > 0 ? numbers[numbers.length - 1] : null;
    if (last !== null) ctx.fillText(last.toFixed(last < 10 ? 2 : 0), width - 40, 10);
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    this.values.forEach((value, i) => {
      if (value === null) {
        drawing = false;
        return;
      }
      const x = (i / (CHART_POINTS - 1)) * width;
      const y = height - (value / top) * (height - 12);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }
}
