/** The page: reads the URL, starts the player and keeps the controls, notices, stats and charts in step. */
import { ABR_NAMES, DEFAULT_QUALITY, chunkQualityMetric, createAbr } from './abr/index.js';
import { Events, Player } from './player.js';
import { ErrorCode } from './protocol.js';
import { fetchChannels, renderChannelList } from './ui/channel-list.js';
import { generatorNote } from './ui/generator-note.js';
import { LiveChart } from './ui/charts.js';
import { configFromUrl } from './ui/page-config.js';
import { QUALITY_AXES, QUALITY_DIGITS, StatsPanel, abrChoiceText } from './ui/stats-panel.js';

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

// --- what the generator's pictures mean, and whether the daemon here keeps up --------------
function renderGeneratorNote(s) {
  const note = $('generator-note');
  const shown = generatorNote(s, player.daemonSpeed());
  if (shown === null) return;
  if (note.className !== shown.className) note.className = shown.className;
  if (note.textContent !== shown.text) note.textContent = shown.text;
}
player.on(Events.MANIFEST_LOADED, ({ manifest }) => {
  renderLevels(manifest.levels);
  const first = manifest.levels[0]?.chunks[0];
  const lacking = first !== undefined && chunkQualityMetric(first, config.quality) === null;
  showNotice({
    kind: 'quality',
    level: 'warn',
    text: lacking && config.quality !== DEFAULT_QUALITY
      ? `?quality=${config.quality}: this ladder's chunks carry no ${config.quality} (fit it with \`promptus ladder --vmaf\` ` +
        'for VMAF); the ABR ranks its chunks by size instead.'
      : null,
  });
  $('channel-list').hidden = true;
  listedChannels = null;
});
let daemonGenerator = null;
player.on(Events.DAEMON_STATUS, ({ generatorId }) => {
  if (generatorId === daemonGenerator) return;
  daemonGenerator = generatorId; // the channel list names it once known
  if (listedChannels !== null) renderChannels(listedChannels);
});

// --- the channels there are, when the one asked for is not ---------------------------------
function pickChannel(channel) {
  if (channel === '' || channel === player.snapshot().channel) return;
  charts.forEach((c) => c.clear());
  channelInput.value = channel;
  player.switchChannel(channel);
  const url = new URL(location.href);
  url.searchParams.set('channel', channel);
  history.replaceState(null, '', url);
}
let listedChannels = null; // shown in #channel-list (null: not shown)
function renderChannels(channels) {
  listedChannels = channels;
  renderChannelList($('channel-list'), channels, {
    onPick: pickChannel,
    daemonGeneratorId: daemonGenerator,
    heading: 'Channels on this server (pick one; each plays only with a daemon of its generator):',
  });
}
async function showChannels({ list }) {
  try {
    const channels = await fetchChannels(config.serverUrl);
    $('channel-names').replaceChildren(...channels.map((c) => new Option(c.name)));
    if (list) renderChannels(channels);
  } catch (error) {
    if (list) showNotice({ kind: 'channel-list', text: `Cannot list the server's channels: ${error.message}`, level: 'warn' });
  }
}
player.on(Events.SERVER_ERROR, ({ code }) => {
  if (code === ErrorCode.UNKNOWN_CHANNEL) showChannels({ list: true });
});

// --- controls ----------------------------------------------------------------------------
const abrSelect = $('abr');
for (const name of ABR_NAMES) abrSelect.append(new Option(name, name, false, name === config.abr));
abrSelect.addEventListener('change', () => {
  try {
    createAbr(abrSelect.value); // validates before switching
    player.setAbr(abrSelect.value, abrSelect.value === config.abr ? config.abrOptions : {});
    levelSelect.options[0].text = abrChoiceText(abrSelect.value);
    const url = new URL(location.href);
    url.searchParams.set('abr', abrSelect.value);
    history.replaceState(null, '', url);
  } catch (error) {
    showNotice({ kind: 'abr', text: error.message, level: 'error' });
  }
});

const levelSelect = $('level');
levelSelect.options[0].text = abrChoiceText(config.abr); // 'auto': the ABR rule picks
let renderedLevels = '';
function renderLevels(levels) {
  const key = JSON.stringify(levels.map((l) => [l.id, l.name, l.kbps]));
  if (key === renderedLevels) return; // a live ladder's manifest comes again every second
  renderedLevels = key;
  const chosen = levelSelect.value;
  levelSelect.replaceChildren(new Option(abrChoiceText(player.snapshot().abr), 'auto'));
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
  pickChannel(channelInput.value.trim());
});
$('retry').addEventListener('click', () => player.retry());

// --- stats and charts --------------------------------------------------------------------
const panel = new StatsPanel($('stats'));
const caption = (id) => $(id).parentElement.querySelector('figcaption');
const charts = [
  new LiveChart($('chart-buffer'), { color: '#2a7ae2', title: 'buffer', unit: 's', minMax: 2, caption: caption('chart-buffer') }),
  new LiveChart($('chart-bitrate'), { color: '#d9822b', title: 'bitrate', unit: 'kbps', digits: 0, minMax: 100, caption: caption('chart-bitrate') }),
  new LiveChart($('chart-quality'), {
    color: '#3a9d5d', title: `quality, ${QUALITY_AXES[config.quality].title}`, unit: QUALITY_AXES[config.quality].unit,
    digits: QUALITY_DIGITS, minMax: 10, caption: caption('chart-quality'),
  }),
];
setInterval(() => {
  const s = player.snapshot();
  panel.render(s);
  renderGeneratorNote(s);
}, RENDER_MS);
setInterval(() => {
  const s = player.snapshot();
  charts[0].push(s.bufferS);
  charts[1].push(s.level?.kbps ?? null);
  if (s.qualityMetric !== null) {
    const axis = QUALITY_AXES[s.qualityMetric];
    charts[2].setQuantity(`quality, ${axis.title}`, axis.unit);
  }
  charts[2].push(s.qualityValue);
}, CHART_MS);

player.start();
showChannels({ list: false }); // suggestions for the channel field
