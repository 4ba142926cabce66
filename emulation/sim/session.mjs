/**
 * One viewing session on a virtual clock: the page fetches chunks one at a time over a traced
 * link, the local daemon generates each downloaded chunk (FIFO, one at a time), and playback
 * drains the buffer of generated video. The ABR rule is the player's own `web/abr/` module,
 * called with the same context the browser builds; it never reads a clock.
 *
 * Model (chunk level, Pensieve-style; units in seconds and bytes):
 *  - Session start (t = 0): hello/manifest takes one RTT; the daemon `open` (init state ->
 *    init segment) is ready at `daemonOpenS`.
 *  - The player's own pipeline constants apply (web/controllers/stream-controller.js): a chunk
 *    is requested when the previous transfer has finished, the video ahead (buffered +
 *    downloaded but not yet generated) is at most `maxBufferS` (Puffer's 15 s) and fewer than
 *    `maxChunksAtDaemon` chunks wait at the daemon; the rule sees `lookaheadChunks` upcoming
 *    chunks, the last `downloadHistory` transfers, that same "video ahead" as `bufferS`, and the
 *    daemon's speed as the player measures it (an Ewma over generated segments; the nominal
 *    speed, as the daemon's status reports it, before the first segment).
 *  - A transfer takes one RTT, then its bytes flow at the trace's rate x `payloadShare`; the
 *    whole transfer time is multiplied by a seeded factor in [1 - delayNoise, 1 + delayNoise].
 *    After a level change the switch prefix (one keyframe of the new level) rides in front of
 *    the chunk (the protocol's `prefix`); chunk 0 needs none.
 *  - Generation of chunk k starts at max(its download end, the end of chunk k-1's generation,
 *    daemon ready) and lasts chunk frames / daemonFps x a seeded factor in
 *    [1 - daemonJitter, 1 + daemonJitter], at an even pace: the daemon sends one segment per
 *    GOP of `gopFrames` frames, so GOP g joins the buffer once its last frame is generated
 *    (encoding overlaps generation and is not modelled). The chunk leaves the daemon with its
 *    last GOP (that is when the player's count of chunks at the daemon drops).
 *  - Playback starts at the first append (one GOP: the startup delay) and stalls whenever the
 *    buffer runs dry before the last chunk has played; it resumes at the next append.
 */
import { jitter } from './rng.mjs';

export const DEFAULTS = Object.freeze({
  rttS: 0.08, // s; round trip per request (Puffer's emulation: mm-delay 40 each way)
  payloadShare: 0.95, // share of link rate that carries payload (Pensieve's packet payload portion)
  delayNoise: 0.1, // relative spread of transfer times (Pensieve multiplies by U(0.9, 1.1))
  daemonFps: 500, // frames/s the daemon generates (SD-Turbo target per H100)
  daemonJitter: 0.1, // relative spread of generation times
  daemonOpenS: 0.3, // s; from page load until the daemon's init segment is ready
  gopFrames: 10, // frames per media segment the daemon sends (client_daemon's GOP; fast.py passes it)
  deadlineFactor: 4, // the session is abandoned after deadlineFactor x its media length + 60 s
});

const MAX_WAIT_STEPS = 10000; // bound on the buffer-wait loop per request
const EPS_S = 1e-9; // s; float slack when comparing buffer levels

/**
 * @param {object} p
 * @param {object} p.ladder   {levels[], chunkS[], sizes[l][j], qualityDb[l][j], prefixBytes[l][j], chunkFrames, fps, kbps[]}
 * @param {import('./link.mjs').TraceLink} p.link
 * @param {{chooseLevel(ctx: object): number}} p.rule
 * @param {{addSample(seconds: number, bytes: number): void, estimateKbps(): number|null}} p.estimator
 * @param {() => number} p.random   seeded uniform [0, 1)
 * @param {number} p.chunks         chunks in the session (the ladder loops when it is shorter)
 * @param {{maxBufferS: number, lookaheadChunks: number, downloadHistory: number, maxChunksAtDaemon: number}} p.player
 *        the browser player's own pipeline constants (web/controllers/stream-controller.js)
 * @param {{sample(weight: number, value: number): void, getEstimate(): number, totalWeight: number}} p.daemonFps
 *        the player's estimator of the daemon's speed (an Ewma over generated segments)
 * @param {object} [p.config]       overrides of DEFAULTS (and of player.maxBufferS)
 */
export function simulateSession({ ladder, link, rule, estimator, daemonFps, random, chunks, player, config = {} }) {
  const cfg = { ...DEFAULTS, ...player, ...config };
  const levelCount = ladder.levels.length;
  const ladderChunks = ladder.chunkS.length;
  const levels = ladder.levels.map((name, id) => ({ id, kbps: ladder.kbps[id] }));
  const mediaS = (k) => ladder.chunkS[k % ladderChunks];
  let totalMediaS = 0;
  for (let k = 0; k < chunks; k++) totalMediaS += mediaS(k);
  const deadline = cfg.deadlineFactor * totalMediaS + 60;

  // Playback state, advanced by advanceTo(); appends wait in FIFO order.
  let now = 0;
  let buffer = 0; // s of generated video ahead of the playhead
  let pendingS = 0; // s of video downloaded but not yet generated
  let pendingChunks = 0; // chunks at the daemon (forwarded, not yet back as segments)
  let playing = false;
  let startupS = null;
  let stallStart = null;
  let playedChunks = 0; // chunks whose video has been appended
  const appendQueue = []; // {t, k, s, last}: one GOP segment of chunk k, s seconds of video
  const stalls = [];
  const out = {
    level: [], chunk: [], bytes: [], prefixBytes: [], quality: [],
    tReq: [], tDl: [], tApp: [], bufAtReq: [], bufAfterApp: [], dlS: [], deliveryMbps: [],
  };

  const append = (t, { k, s, last }) => {
    buffer += s;
    pendingS -= s;
    if (last) {
      pendingChunks -= 1;
      playedChunks += 1;
      out.bufAfterApp[k] = buffer;
    }
    if (!playing) {
      playing = true;
      if (startupS === null) startupS = t;
      if (stallStart !== null) {
        stalls.push([stallStart, t]);
        stallStart = null;
      }
    }
  };

  /** Moves the clock to `t`, applying appends and draining the buffer on the way. */
  const advanceTo = (t) => {
    while (now < t) {
      const nextAppend = appendQueue.length ? appendQueue[0].t : Infinity;
      const stop = Math.min(t, nextAppend);
      if (playing) {
        const dry = now + buffer;
        if (dry <= stop && dry < nextAppend) {
          buffer = 0;
          now = dry;
          playing = false;
          if (playedChunks < chunks) stallStart = now; // else the session has ended
          continue;
        }
        buffer -= stop - now;
      }
      now = stop;
      while (appendQueue.length && appendQueue[0].t <= now) append(now, appendQueue.shift());
    }
    while (appendQueue.length && appendQueue[0].t <= now) append(now, appendQueue.shift());
  };

  let networkFree = cfg.rttS; // hello -> manifest
  let daemonFree = cfg.daemonOpenS;
  let lastLevel = null;
  let lastQuality = null;
  const downloads = [];
  const generated = []; // segments not yet seen by the daemon-speed estimator, in time order
  let abandoned = false;

  for (let k = 0; k < chunks; k++) {
    advanceTo(Math.max(now, networkFree));
    // Wait until the video ahead is at most maxBufferS (only playback drains it) and the
    // daemon holds fewer than maxChunksAtDaemon chunks (only an append frees one).
    for (let step = 0; buffer + pendingS > cfg.maxBufferS + EPS_S || pendingChunks >= cfg.maxChunksAtDaemon; step++) {
      if (step >= MAX_WAIT_STEPS) throw new Error('buffer wait did not converge');
      const excess = buffer + pendingS - cfg.maxBufferS;
      const nextAppend = appendQueue.length ? appendQueue[0].t : Infinity;
      const drain = playing && buffer > 0 && excess > EPS_S && pendingChunks < cfg.maxChunksAtDaemon;
      const target = drain ? now + Math.min(excess, buffer) : nextAppend;
      if (!Number.isFinite(target)) throw new Error('buffer is full but nothing drains it');
      advanceTo(Math.min(target, nextAppend));
    }
    while (generated.length && generated[0].t <= now) {
      const segment = generated.shift();
      daemonFps.sample(segment.genS, segment.frames / segment.genS);
    }
    if (now > deadline) {
      abandoned = true;
      break;
    }
    const j = k % ladderChunks;
    const upcoming = [];
    for (let a = k; a < Math.min(chunks, k + cfg.lookaheadChunks); a++) {
      const ja = a % ladderChunks;
      upcoming.push(ladder.sizes.map((row, l) => ({ bytes: row[ja], quality: ladder.qualityDb[l][ja] })));
    }
    const ctx = {
      nowS: now,
      bufferS: buffer + pendingS, // the player counts chunks still at the daemon
      maxBufferS: cfg.maxBufferS,
      chunkDurationS: mediaS(k),
      chunkFrames: ladder.chunkFrames,
      fps: ladder.fps,
      levels,
      upcoming,
      lastLevel,
      lastQuality,
      throughputKbps: estimator.estimateKbps(),
      downloads: downloads.slice(),
      daemonFps: daemonFps.totalWeight > 0 ? daemonFps.getEstimate() : cfg.daemonFps, // status fps until measured
      rebuffering: !playing && startupS !== null,
    };
    const level = rule.chooseLevel(ctx);
    if (!Number.isInteger(level) || level < 0 || level >= levelCount) {
      throw new RangeError(`rule ${rule.name} chose level ${level} of ${levelCount}`);
    }
    const prefix = lastLevel !== null && level !== lastLevel ? ladder.prefixBytes[level][j] : 0;
    const bytes = ladder.sizes[level][j] + prefix;
    const flowS = link.transferSeconds(now + cfg.rttS, (bytes * 8) / cfg.payloadShare);
    const dlS = (cfg.rttS + flowS) * jitter(random, cfg.delayNoise);
    const tDl = now + dlS;
    const frames = Math.round(mediaS(k) * ladder.fps);
    const genS = (frames / cfg.daemonFps) * jitter(random, cfg.daemonJitter);
    const genStart = Math.max(tDl, daemonFree);
    const tApp = genStart + genS;
    const gops = [];
    for (let first = 0; first < frames; first += cfg.gopFrames) {
      const end = Math.min(first + cfg.gopFrames, frames);
      gops.push({ t: genStart + (genS * end) / frames, k, s: (mediaS(k) * (end - first)) / frames, last: end === frames });
    }
    generated.push({ t: tApp, genS, frames });
    daemonFree = tApp;

    out.level.push(level);
    out.chunk.push(j);
    out.bytes.push(ladder.sizes[level][j]);
    out.prefixBytes.push(prefix);
    out.quality.push(ladder.qualityDb[level][j]);
    out.tReq.push(now);
    out.tDl.push(tDl);
    out.tApp.push(tApp);
    out.bufAtReq.push(buffer);
    out.bufAfterApp.push(null); // set when the segment is appended (stays null if the session is abandoned first)
    out.dlS.push(dlS);
    // What TCP's delivery-rate estimate would see: payload over the time the bytes flowed.
    out.deliveryMbps.push(flowS > 0 ? (bytes * 8) / flowS / 1e6 : 0);

    const download = { bytes, seconds: dlS, endS: tDl };
    downloads.push(download);
    if (downloads.length > cfg.downloadHistory) downloads.shift();
    estimator.addSample(dlS, bytes);
    pendingS += mediaS(k);
    pendingChunks += 1;
    appendQueue.push(...gops);
    networkFree = tDl;
    lastLevel = level;
    lastQuality = ladder.qualityDb[level][j];
  }
  if (!abandoned) {
    // Play out what is left.
    const lastApp = appendQueue.length ? appendQueue[appendQueue.length - 1].t : now;
    advanceTo(Math.max(now, lastApp));
    advanceTo(now + buffer);
  }
  if (stallStart !== null) stalls.push([stallStart, now]); // the viewer gave up while stalled
  return { startupS, endS: now, abandoned, stalls, chunks: out };
}
