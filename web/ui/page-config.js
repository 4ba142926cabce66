/** Reads the player configuration from the page URL (pure: takes the URL, returns a config). */
import { ABR_NAMES, DEFAULT_ABR, DEFAULT_QUALITY, QUALITY_MEASURES } from '../abr/index.js';
import { MAX_BUFFER_S } from '../controllers/stream-controller.js';

export const DEFAULT_DAEMON_URL = 'ws://127.0.0.1:9090';
export const DEFAULT_CHANNEL = 'demo';
export const MIN_BUFFER_S = 2; // seconds: below this the player would stall between chunks
export const MAX_BUFFER_PARAM_S = 120; // seconds

/**
 * ?channel=&abr=&fixed=&level=&buffer=&quality=&daemon=&server=&loop=  ->  {config, problems}
 * `problems` lists parameters that were ignored, with the reason (shown on the page).
 * @param {string} href
 */
export function configFromUrl(href) {
  const url = new URL(href);
  const params = url.searchParams;
  const problems = [];
  const wsScheme = url.protocol === 'https:' ? 'wss:' : 'ws:';

  let abr = params.get('abr') ?? DEFAULT_ABR;
  if (!ABR_NAMES.includes(abr)) {
    problems.push(`unknown abr '${abr}' (known: ${ABR_NAMES.join(', ')}); using ${DEFAULT_ABR}`);
    abr = DEFAULT_ABR;
  }
  const abrOptions = {};
  if (abr === 'fixed') abrOptions.level = intParam(params, 'fixed', 0, problems);
  const manualLevel = params.has('level') && params.get('level') !== 'auto' ? intParam(params, 'level', null, problems) : null;
  let maxBufferS = MAX_BUFFER_S;
  if (params.has('buffer')) {
    const value = Number(params.get('buffer'));
    if (Number.isFinite(value) && value >= MIN_BUFFER_S && value <= MAX_BUFFER_PARAM_S) maxBufferS = value;
    else problems.push(`'buffer' must be seconds in [${MIN_BUFFER_S}, ${MAX_BUFFER_PARAM_S}], got '${params.get('buffer')}'`);
  }

  let quality = params.get('quality') ?? DEFAULT_QUALITY;
  if (!Object.hasOwn(QUALITY_MEASURES, quality)) {
    problems.push(`unknown quality '${quality}' (known: ${Object.keys(QUALITY_MEASURES).join(', ')}); using ${DEFAULT_QUALITY}`);
    quality = DEFAULT_QUALITY;
  }

  const serverUrl = wsUrl(params.get('server'), `${wsScheme}//${url.host}/ws`, 'server', problems);
  const daemonUrl = wsUrl(params.get('daemon'), DEFAULT_DAEMON_URL, 'daemon', problems);
  return {
    config: {
      channel: params.get('channel') || DEFAULT_CHANNEL,
      abr,
      abrOptions,
      manualLevel,
      maxBufferS,
      quality,
      serverUrl,
      daemonUrl,
      loop: params.get('loop') !== '0',
      pageOrigin: url.origin,
    },
    problems,
  };
}

function intParam(params, name, fallback, problems) {
  const text = params.get(name);
  const value = Number(text);
  if (Number.isInteger(value) && value >= 0) return value;
  problems.push(`'${name}' must be a level number >= 0, got '${text}'`);
  return fallback;
}

function wsUrl(text, fallback, name, problems) {
  if (text === null || text === '') return fallback;
  try {
    const parsed = new URL(text);
    if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') return parsed.href;
  } catch {
    // reported below
  }
  problems.push(`'${name}' must be a ws:// or wss:// URL, got '${text}'; using ${fallback}`);
  return fallback;
}
