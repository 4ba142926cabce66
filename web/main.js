/** The page: reads the URL, starts the player and keeps the controls, notices, stats and charts in step. */
import { ABR_NAMES, createAbr } from './abr/index.js';
import { Events, Player } from './player.js';
import { LiveChart } from './ui/charts.js';
import { configFromUrl } from './ui/page-config.js';
import { StatsPanel } from './ui/stats-panel.js';

const RENDER_MS = 250; // stats panel refresh
const CHART_MS = 1000; // one chart sample per second

const $ = (id) => document.getElementById(id);
const { config, problems } = configFromUrl(location.href);
const video = $('video');
const player = new Player({ ...config, video });
window.promptusPlayer = player; // for the console and the browser tests

// --- notices ---------------------------------------------------------------------------
const notices = new Map();
function showNotice({ kind, text, level }) {
  if (text === null) notices.delete(kind);
  else notices.set(kind, { text, level });
  const box = $('notices');
  box.replaceChildren(...[...notices].map(([key, n]) => {
    const div = document.createElement('div');
    div.className = `notice ${n.level}`;
    div.dataset.kind = key;
    // `code` spans for commands written between backticks
    n.text.split('`').forEach((part, i) => {
      const node = i % 2 ? document.createElement('code') : document.createTextNode(part);
      if (i % 2) node.textContent = part;
      div.append(node);
    });
    return div;
  }));
}
player.on(Events.NOTICE, showNotice);
problems.forEach((text, i) => showNotice({ kind: `url-${i}`, text: `URL parameter ignored: ${text}`, level: 'warn' }));
player.on(Events.ERROR, ({ source, message }) => console.warn(`[promptus ${source}] ${message}`));

// --- what the generator's pictures mean --------------------------------------------------
function renderGeneratorNote(generator) {
  const note = $('generator-note');
  if (generator === null) return;
  const tiny = generator.id.startsWith('tiny');
  note.className = tiny ? 'note tiny' : 'note';
  note.textContent = tiny
    ? `Generator ${generator.name} (${generator.id}): the tiny test generator has seeded random weights, ` +
      'so its pictures carry no meaning. They are real frames from the same code path as SD-Turbo ' +
      '(prompts -> one UNet step -> decoder -> H.264 -> this video element). With SD-Turbo weights on a GPU ' +
      'the same page shows the fitted video (see the README).'
    : `Generator ${generator.name} (${generator.id}): frames are generated on this machine from the prompts the server sends.`;
}
player.on(Events.MANIFEST_LOADED, ({ manifest }) => {
  renderGeneratorNote(manifest.generator);
  renderLevels(manifest.levels);
});

// --- controls ----------------------------------------------------------------------------
const abrSelect = $('abr');
for (const name of ABR_NAMES) abrSelect.append(new Option(name, name, false, name === config.abr));
abrSelect.addEventListener('change', () => {
  try {
    createAbr(abrSelect.value); // validates before switching
    player.setAbr(abrSelect.value, abrSelect.value === config.abr ? config.abrOptions : {});
    const url = new URL(location.href);
    url.searchParams.set('abr', abrSelect.value);
    history.replaceState(null, '', url);
  } catch (error) {
    showNotice({ kind: 'abr', text: error.message, level: 'error' });
  }
});

const levelSelect = $('level');
let renderedLevels = '';
function renderLevels(levels) {
  const key = JSON.stringify(levels.map((l) => [l.id, l.name, l.kbps]));
  if (key === renderedLevels) return; // a live ladder's manifest comes again every second
  renderedLevels = key;
  const chosen = levelSelect.value;
  levelSelect.replaceChildren(new Option('auto', 'auto'));
  for (const level of levels) {
    levelSelect.append(new Option(`${level.id}: ${level.name} r${level.rank} N${level.interval} ${level.kbps.toFixed(0)} kbps`, String(level.id)));
  }
  const manual = player.snapshot().manualLevel;
  levelSelect.value = manual !== null ? String(manual) : [...levelSelect.options].some((o) => o.value === chosen) ? chosen : 'auto';
}
levelSelect.addEventListener('change', () => {
  player.setManualLevel(levelSelect.value === 'auto' ? null : Number(levelSelect.value));
});

const channelInput = $('channel');
channelInput.value = config.channel;
$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  const channel = channelInput.value.trim();
  if (channel === '' || channel === player.snapshot().channel) return;
  charts.forEach((c) => c.clear());
  player.switchChannel(channel);
  const url = new URL(location.href);
  url.searchParams.set('channel', channel);
  history.replaceState(null, '', url);
});
$('retry').addEventListener('click', () => player.retry());

// --- stats and charts --------------------------------------------------------------------
const panel = new StatsPanel($('stats'));
const charts = [
  new LiveChart($('chart-buffer'), { color: '#2a7ae2', minMax: 2 }),
  new LiveChart($('chart-bitrate'), { color: '#d9822b', minMax: 100 }),
  new LiveChart($('chart-quality'), { color: '#3a9d5d', minMax: 10 }),
];
setInterval(() => panel.render(player.snapshot()), RENDER_MS);
setInterval(() => {
  const s = player.snapshot();
  charts[0].push(s.bufferS);
  charts[1].push(s.level?.kbps ?? null);
  charts[2].push(s.qualityDb);
}, CHART_MS);

player.start();
