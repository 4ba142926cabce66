/** Fills the stats table from a player snapshot. */

const fmt = (value, digits, unit = '') => (value === null || value === undefined || !Number.isFinite(value) ? '-' : `${value.toFixed(digits)}${unit}`);

export class StatsPanel {
  /** @param {HTMLElement} table element holding td[data-stat] cells */
  constructor(table) {
    this.cells = Object.fromEntries([...table.querySelectorAll('[data-stat]')].map((td) => [td.dataset.stat, td]));
  }

  render(s) {
    const level = s.level;
    const set = (key, text) => {
      if (this.cells[key] && this.cells[key].textContent !== text) this.cells[key].textContent = text;
    };
    set('state', s.blocked ? `blocked (${s.blocked.kind})` : s.state);
    set('level', level === null ? '-' : `${level.id}: ${level.name}${s.manualLevel !== null ? ' (manual)' : ''}, ${s.levels.length} levels`);
    set('rank', level === null ? '-' : `r${level.rank} / N${level.interval}`);
    set('kbps', level === null ? '-' : fmt(level.kbps, 1, ' kbps'));
    const measured = [s.ssim === null ? null : `SSIM ${s.ssim.toFixed(3)}`, s.psnr === null ? null : `PSNR ${s.psnr.toFixed(1)} dB`];
    set('quality', measured.some((m) => m !== null) ? measured.filter((m) => m !== null).join(', ') : 'not measured');
    set('buffer', `${fmt(s.bufferS, 2, ' s')} of ${fmt(s.maxBufferS, 0, ' s')}`);
    set('throughput', fmt(s.throughputKbps, 0, ' kbps'));
    const device = s.daemonDevice ? ` on ${s.daemonDevice}` : '';
    set('daemon', s.daemonConnected ? `${fmt(s.daemonFps, 1, ' fps')}${device}` : 'not connected');
    set('stalls', `${s.stalls} (${fmt(s.stallS, 2, ' s')})`);
    set('startup', fmt(s.startupS, 3, ' s'));
    const length = Number.isFinite(s.duration) ? fmt(s.duration, 2, ' s') : s.live ? 'live' : 'looping';
    set('position', `${fmt(s.currentTime, 2, ' s')} / ${length}${s.chunk !== null ? ` (chunk ${s.chunk}${s.pass ? `, pass ${s.pass + 1}` : ''})` : ''}`);
    set('frames', `${s.decodedFrames ?? '-'} / ${s.droppedFrames ?? '-'}`);
    set('abr', s.abr);
  }
}
