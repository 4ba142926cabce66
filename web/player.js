/**
 * The player facade: builds every controller from one config object and exposes the few
 * operations a page needs (start, seek, channel, ABR, manual level, snapshot, destroy).
 *
 *   const player = new Player({ video, serverUrl, daemonUrl, channel: 'sky', abr: 'mpc' });
 *   player.on(Events.NOTICE, ({kind, text}) => ...);
 *   player.start();
 */
import { EventBus, Events } from './events.js';
import { createAbr, DEFAULT_ABR } from './abr/index.js';
import { chunkQualityDb } from './abr/context.js';
import { ThroughputEstimator } from './abr/throughput-estimator.js';
import { BufferController } from './controllers/buffer-controller.js';
import { DaemonLink } from './controllers/daemon-link.js';
import { chunkInfo, windowStart } from './controllers/live-window.js';
import { NoticeController } from './controllers/notice-controller.js';
import { ServerLink } from './controllers/server-link.js';
import { StreamController, MAX_BUFFER_S } from './controllers/stream-controller.js';
import { TelemetryController } from './controllers/telemetry-controller.js';

export { Events } from './events.js';

/**
 * @typedef {object} PlayerConfig
 * @property {HTMLVideoElement} video
 * @property {string} serverUrl        the media server's WebSocket, e.g. ws://host:8080/ws
 * @property {string} daemonUrl        the local daemon, ws://127.0.0.1:9090
 * @property {string} channel
 * @property {string} [abr]            'bba' | 'mpc' | 'throughput' | 'bola' | 'fixed'
 * @property {object} [abrOptions]     options of that rule (e.g. {level: 2} for fixed)
 * @property {number|null} [manualLevel]  null = automatic
 * @property {number} [maxBufferS]     buffer target (15 s)
 * @property {boolean} [loop]          start over at the end of a finished ladder
 * @property {string} [pageOrigin]     for messages (default: location.origin)
 * @property {() => number} [clock]    seconds; default performance.now() / 1000
 */
export class Player {
  /** @param {PlayerConfig} config */
  constructor(config) {
    const clock = config.clock ?? (() => performance.now() / 1000);
    this.config = { abr: DEFAULT_ABR, abrOptions: {}, manualLevel: null, maxBufferS: MAX_BUFFER_S, loop: false, ...config, clock };
    this.bus = new EventBus();
    this.abrName = this.config.abr;
    const session = `page-${Math.random().toString(36).slice(2, 10)}`;
    this.server = new ServerLink(this.bus, {
      url: config.serverUrl,
      channel: config.channel,
      abr: this.abrName,
      userAgent: globalThis.navigator?.userAgent ?? '',
      clock,
    });
    this.daemon = new DaemonLink(this.bus, { url: config.daemonUrl, session });
    this.buffer = new BufferController(this.bus, { video: config.video });
    this.estimator = new ThroughputEstimator();
    this.stream = new StreamController(this.bus, {
      video: config.video,
      server: this.server,
      daemon: this.daemon,
      buffer: this.buffer,
      estimator: this.estimator,
      abr: createAbr(this.abrName, this.config.abrOptions),
      clock,
      maxBufferS: this.config.maxBufferS,
      loop: this.config.loop,
      manualLevel: this.config.manualLevel,
    });
    this.notices = new NoticeController(this.bus, { pageOrigin: config.pageOrigin ?? globalThis.location?.origin ?? '' });
    this.telemetry = new TelemetryController(this.bus, { server: this.server, snapshot: () => this.snapshot() });
  }

  on(event, listener) {
    this.bus.on(event, listener);
  }

  off(event, listener) {
    this.bus.off(event, listener);
  }

  start() {
    this.notices.registerListeners();
    this.stream.start(this.config.channel);
    this.telemetry.start();
    this.server.start();
    this.daemon.start();
  }

  /** Chooses the ABR rule by name (see web/abr/README.md). */
  setAbr(name, options = {}) {
    const abr = createAbr(name, options);
    this.abrName = name;
    this.server.setAbr(name);
    this.stream.setAbr(abr);
  }

  /** Forces a level (id) or, with null, hands the choice back to the ABR rule. */
  setManualLevel(level) {
    this.stream.setManualLevel(level);
  }

  seek(seconds) {
    this.config.video.currentTime = seconds;
  }

  switchChannel(channel) {
    this.bus.trigger(Events.NOTICE, { kind: 'playback', text: null, level: 'info' });
    this.config.channel = channel;
    this.stream.switchChannel(channel);
  }

  /** Tries the daemon again now (after the viewer started or fixed it). */
  retry() {
    this.bus.trigger(Events.NOTICE, { kind: 'playback', text: null, level: 'info' });
    this.stream.retry();
  }

  /** Everything the stats panel, charts, telemetry and tests read. */
  snapshot() {
    const s = this.stream;
    const video = this.config.video;
    const manifest = s.manifest;
    const now = this.config.clock();
    const levelId = manifest === null ? null : s.playingLevel ?? 0;
    const level = levelId === null ? null : manifest.levels[levelId];
    const place = manifest === null ? null : s.timeline.split(s.playingChunk);
    const chunk = place === null ? null : place.chunk;
    const info = level === null || chunk === null ? undefined : chunkInfo(manifest, levelId, chunk);
    const quality = video.getVideoPlaybackQuality?.();
    return {
      channel: s.channel,
      state: s.state,
      abr: this.abrName,
      manualLevel: s.manualLevel,
      levelId,
      level: level === null ? null : { id: level.id, name: level.name, rank: level.rank, interval: level.interval, kbps: level.kbps },
      levels: manifest === null ? [] : manifest.levels.map((l) => ({ id: l.id, name: l.name, rank: l.rank, interval: l.interval, kbps: l.kbps })),
      qualityDb: info === undefined || info === null ? null : chunkQualityDb(info),
      ssim: info?.ssim ?? null,
      psnr: info?.psnr ?? null,
      chunk,
      pass: place === null ? null : place.pass,
      chunkCount: manifest?.chunk_count ?? null,
      live: manifest?.live ?? null,
      windowStart: manifest === null ? null : windowStart(manifest),
      behindLiveS: s.behindLiveS,
      generator: manifest?.generator ?? null,
      bufferS: this.buffer.bufferAheadS(),
      maxBufferS: s.maxBufferS,
      throughputKbps: this.estimator.estimateKbps(),
      daemonFps: s.daemonFpsEstimate,
      daemonDevice: s.daemonStatus?.device ?? null,
      daemonQueue: s.daemonStatus?.queueDepth ?? null,
      daemonConnected: this.daemon.connected,
      serverConnected: this.server.connected,
      stalls: s.stalls,
      stallS: s.stallSecondsAt(now),
      startupS: s.startupS,
      startupMarks: { ...s.startupMarks },
      currentTime: video.currentTime,
      duration: video.duration,
      paused: video.paused,
      decodedFrames: quality?.totalVideoFrames ?? null,
      droppedFrames: quality?.droppedVideoFrames ?? null,
      blocked: s.blockedReason,
      statsSent: this.telemetry.sent,
    };
  }

  destroy() {
    this.telemetry.destroy();
    this.stream.destroy();
    this.notices.destroy();
    this.server.destroy();
    this.daemon.destroy();
    this.buffer.destroy();
    this.bus.destroy();
  }
}
