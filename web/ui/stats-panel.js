/** Fills the stats table from a player snapshot. */
import { daemonKeepsUp } from '../abr/context.js';

const fmt = (value, digits, unit = '') => (value === null || value === undefined || !Number.isFinite(value) ? '-' : `${value.toFixed(digits)}${unit}`);

/** Digits the page shows quality in dB with (table and chart alike). */
export const QUALITY_DIGITS = 1;

/** What the quality chart plots for each manifest field (web/abr/context.js: chunkQualityMetric): title and unit. */
export const QUALITY_AXES = Object.freeze({
  ssim: { title: 'SSIM in dB, -10 log10(1 - SSIM)', unit: 'dB' },
  psnr: { title: 'PSNR', unit: 'dB' },
  vmaf: { title: 'VMAF (vmaf_v0.6.1, 0 to 100)', unit: 'VMAF' },
});

/** "2: r8n5" */
export const levelName = (level) => `${level.id}: ${level.name}`;

/** Who picks the level: the Level menu's first entry and the "Level chosen" row say it alike. */
export const abrChoiceText = (abr) => `ABR ${abr}`;

/** The level asked for now, and when it will be on screen if another one is playing. */
export function chosenLevelText(s) {
  if (s.chosenLevel === null) return '-';
  const how = s.manualLevel !== null ? 'manual' : abrChoiceText(s.abr);
  const when = s.chosenOnScreenIn;
  let shows = '';
  if (when !== null) {
    shows = when.atLeast
      ? `; on screen after the ${when.seconds.toFixed(1)} s buffered at other levels`
      : `; on screen in ${when.seconds.toFixed(1)} s (buffered video plays first)`;
  }
  return `${levelName(s.chosenLevel)} (${how})${shows}`;
}

/**
 * "SSIM 0.900 (10.0 dB SSIM), PSNR 28.0 dB, VMAF 71.2": the index with the dB of it the quality
 * chart plots, each value with its unit where it is shown; "-" while no level plays.
 */
export function qualityText(s) {
  if (s.level === null) return '-';
  const parts = [];
  if (s.ssim !== null) {
    const db = s.qualityMetric === 'ssim' ? ` (${fmt(s.qualityValue, QUALITY_DIGITS, ' dB SSIM')})` : '';
    parts.push(`SSIM ${s.ssim.toFixed(3)}${db}`);
  }
  if (s.psnr !== null) parts.push(`PSNR ${s.psnr.toFixed(QUALITY_DIGITS)} dB`);
  if (s.vmaf !== null && s.vmaf !== undefined) parts.push(`VMAF ${s.vmaf.toFixed(QUALITY_DIGITS)}`);
  return parts.length > 0 ? parts.join(', ') : 'not measured';
}

/** "31.2 fps on cpu", slower than real time when it is; before its first frames "connected, on cpu, no frames yet". */
export function daemonText(s) {
  if (!s.daemonConnected) return 'not connected';
  const device = s.daemonDevice ? ` on ${s.daemonDevice}` : '';
  if (s.daemonFps === null) return `connected${device ? `,${device}` : ''}, no frames generated yet`;
  const slow = s.streamFps !== null && !daemonKeepsUp({ daemonFps: s.daemonFps, fps: s.streamFps })
    ? `, slower than real time (stream: ${s.streamFps} fps)`
    : '';
  return `${fmt(s.daemonFps, 1, ' fps')}${device}${slow}`;
}

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
    set('level', level === null ? '-' : `${levelName(level)} (of ${s.levels.length} levels)`);
    set('chosen', chosenLevelText(s));
    set('rank', level === null ? '-' : `r${level.rank} / N${level.interval}`);
    set('kbps', level === null ? '-' : fmt(level.kbps, 1, ' kbps'));
    set('quality', qualityText(s));
    set('buffer', `${fmt(s.bufferS, 2, ' s')} of ${fmt(s.maxBufferS, 0, ' s')}`);
    set('throughput', fmt(s.throughputKbps, 0, ' kbps'));
    set('daemon', daemonText(s));
    set('stalls', `${s.stalls} (${fmt(s.stallS, 2, ' s')})`);
    set('startup', fmt(s.startupS, 3, ' s'));
    const length = Number.isFinite(s.duration) ? fmt(s.duration, 2, ' s') : s.live ? 'live' : 'looping';
    set('position', `${fmt(s.currentTime, 2, ' s')} / ${length}${s.chunk !== null && level !== null ? ` (chunk ${s.chunk}${s.pass ? `, pass ${s.pass + 1}` : ''})` : ''}`);
    set('frames', `${s.decodedFrames ?? '-'} / ${s.droppedFrames ?? '-'}`);
    set('abr', s.abr);
  }
}
