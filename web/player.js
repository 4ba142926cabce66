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
import { DEFAULT_QUALITY, chunkInfo, chunkQuality, chunkQualityMetric, windowStart } from './abr/context.js';
import { ThroughputEstimator } from './abr/throughput-estimator.js';
import { BufferController } from './controllers/buffer-controller.js';
import { ChunkLoader } from './controllers/chunk-loader.js';
import { DaemonLink } from './controllers/daemon-link.js';
import { DaemonPace } from './controllers/daemon-pace.js';
import { DaemonSessionController } from './controllers/daemon-session-controller.js';
import { ErrorController } from './controllers/error-controller.js';
import { LevelController } from './controllers/level-controller.js';
import { LiveController } from './controllers/live-controller.js';
import { ManifestController } from './controllers/manifest-controller.js';
import { NoticeController } from './controllers/notice-controller.js';
import { PlaybackMonitor } from './controllers/playback-monitor.js';
import { SeekController } from './controllers/seek-controller.js';
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
 * @property {string} [quality]        the measure the ABR ranks chunks by: 'ssim' | 'psnr' | 'vmaf' (abr/context.js)
 * @property {string} [pageOrigin]     for messages (default: location.origin)
 * @property {() => number} [clock]    seconds; default performance.now() / 1000
 */
export class Player {
  /** @param {PlayerConfig} config */
  constructor(config) {
    const clock = config.clock ?? (() => performance.now() / 1000);
    this.config = {
      abr: DEFAULT_ABR, abrOptions: {}, manualLevel: null, maxBufferS: MAX_BUFFER_S, loop: false, quality: DEFAULT_QUALITY,
      ...config, clock,
    };
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
    this.monitor = new PlaybackMonitor(this.bus, { video: config.video, buffer: this.buffer, clock });
    this.live = new LiveController({ video: config.video, buffer: this.buffer });
    this.pace = new DaemonPace(this.bus);
    this.levels = new LevelController(this.bus, {
      video: config.video,
      estimator: this.estimator,
      abr: createAbr(this.abrName, this.config.abrOptions),
      pace: this.pace,
      manualLevel: this.config.manualLevel,
      quality: this.config.quality,
    });
    this.manifests = new ManifestController(this.bus, {
      video: config.video, buffer: this.buffer, live: this.live, levels: this.levels, monitor: this.monitor, loop: this.config.loop,
    });
    this.session = new DaemonSessionController(this.bus, {
      video: config.video, daemon: this.daemon, buffer: this.buffer, manifests: this.manifests, levels: this.levels, pace: this.pace,
      monitor: this.monitor,
    });
    this.seeks = new SeekController(this.bus, {
      video: config.video, buffer: this.buffer, manifests: this.manifests, live: this.live, levels: this.levels, monitor: this.monitor,
    });
    this.loader = new ChunkLoader(this.bus, { server: this.server, clock });
    this.stream = new StreamController(this.bus, {
      video: config.video,
      server: this.server,
      daemon: this.daemon,
      buffer: this.buffer,
      levels: this.levels,
      monitor: this.monitor,
      live: this.live,
      manifests: this.manifests,
      session: this.session,
      loader: this.loader,
      clock,
      maxBufferS: this.config.maxBufferS,
    });
    this.errors = new ErrorController(this.bus, {
      stream: this.stream, loader: this.loader, manifests: this.manifests, live: this.live, video: config.video,
    });
    this.notices = new NoticeController(this.bus, {
      pageOrigin: config.pageOrigin ?? globalThis.location?.origin ?? '',
      speed: () => this.daemonSpeed(),
    });
    this.telemetry = new TelemetryController(this.bus, { server: this.server, snapshot: () => this.snapshot() });
  }

  on(event, listener) {
    this.bus.on(event, listener);
  }

  off(event, listener) {
    this.bus.off(event, listener);
  }

  start() {
    this.notices.start();
    this.monitor.registerListeners();
    this.pace.registerListeners();
    this.manifests.registerListeners();
    this.session.registerListeners();
    this.seeks.registerListeners();
    this.loader.registerListeners();
    this.stream.start(this.config.channel);
    this.errors.registerListeners();
    this.telemetry.start();
    this.server.start();
    this.daemon.start();
  }

  /** Chooses the ABR rule by name (see web/abr/README.md). */
  setAbr(name, options = {}) {
    const abr = createAbr(name, options);
    this.abrName = name;
    this.server.setAbr(name);
    this.levels.setAbr(abr);
    this.stream.tick(); // the next chunk's level at once
  }

  /** Forces a level (id) or, with null, hands the choice back to the ABR rule. */
  setManualLevel(level) {
    this.levels.setManualLevel(level);
    this.stream.tick();
  }

  /**
   * Moves playback to `seconds`. A target past what the stream can seek to now (a finished
   * stream's end, a live ladder's edge, a looping ladder's next pass) lands on that end, and the
   * page says so; returns where it lands.
   */
  seek(seconds) {
    const video = this.config.video;
    const ranges = video.seekable;
    const endS = ranges.length > 0 ? ranges.end(ranges.length - 1) : video.duration;
    let target = Math.max(0, seconds);
    let text = null;
    if (Number.isFinite(endS) && target > endS) {
      const { manifest, endless } = this.manifests.status();
      const why = manifest?.live ? 'the live edge'
        : endless ? 'the end of the next pass of this looping ladder' : 'the end of the stream';
      text = `Cannot seek to ${seconds.toFixed(1)} s: the stream can be sought up to ${endS.toFixed(1)} s now ` +
        `(${why}); playing from ${endS.toFixed(1)} s instead.`;
      target = endS;
    }
    this.bus.trigger(Events.NOTICE, { kind: 'seek', text, level: 'warn' });
    video.currentTime = target;
    return target;
  }

  switchChannel(channel) {
    this.bus.trigger(Events.NOTICE, { kind: 'playback', text: null, level: 'info' });
    this.bus.trigger(Events.NOTICE, { kind: 'seek', text: null, level: 'info' });
    this.notices.resetChannel();
    this.config.channel = channel;
    this.stream.switchChannel(channel);
  }

  /** Tries the daemon again now (after the viewer started or fixed it). */
  retry() {
    this.bus.trigger(Events.NOTICE, { kind: 'playback', text: null, level: 'info' });
    this.stream.retry();
  }

  /** The daemon's pace against the stream's (the notice controller's input), null before a manifest. */
  daemonSpeed() {
    const { manifest } = this.manifests.status();
    if (manifest === null) return null;
    const { ready: daemonReady } = this.session.status();
    const { startupMarks: marks, sinceStartS } = this.monitor.status(this.config.clock());
    const waiting = marks.chunk !== undefined && marks.segment === undefined && daemonReady;
    const pace = this.pace.status();
    return {
      daemonFps: pace.fps,
      fps: manifest.fps,
      chunkFrames: manifest.chunk_frames,
      device: pace.device,
      firstChunkWaitS: waiting ? sinceStartS - marks.chunk : null,
    };
  }

  /** Everything the stats panel, charts, telemetry and tests read. */
  snapshot() {
    const s = this.stream.status();
    const { channel, manifest, playing: place } = this.manifests.status(); // place: null before the manifest
    const video = this.config.video;
    const now = this.config.clock();
    const bufferS = this.buffer.bufferAheadS();
    const levels = this.levels.status(bufferS);
    const levelId = levels.playingLevel; // null until a chunk went to the daemon
    const level = levelId === null ? null : manifest.levels[levelId];
    const chunk = place === null ? null : place.chunk;
    const info = level === null || chunk === null ? undefined : chunkInfo(manifest, levelId, chunk);
    const quality = video.getVideoPlaybackQuality?.();
    const summary = (l) => ({ id: l.id, name: l.name, rank: l.rank, interval: l.interval, kbps: l.kbps });
    const chosenId = levels.chosenLevel;
    const pace = this.pace.status();
    const monitor = this.monitor.status(now);
    return {
      channel,
      state: s.state,
      abr: this.abrName,
      manualLevel: levels.manualLevel,
      levelId,
      level: level === null ? null : summary(level),
      levels: manifest === null ? [] : manifest.levels.map(summary),
      // the level the player asks for now (manual, else the ABR's last pick) and when it shows
      chosenLevel: chosenId === null ? null : summary(manifest.levels[chosenId]),
      chosenOnScreenIn: levels.chosenOnScreenIn,
      // the playing chunk's quality under the ABR's measure (what the quality chart plots)
      qualityValue: info === undefined || info === null ? null : chunkQuality(info, this.config.quality),
      qualityMetric: info === undefined || info === null ? null : chunkQualityMetric(info, this.config.quality),
      qualityMeasure: this.config.quality,
      ssim: info?.ssim ?? null,
      psnr: info?.psnr ?? null,
      vmaf: info?.vmaf ?? null,
      chunk,
      pass: place === null ? null : place.pass,
      chunkCount: manifest?.chunk_count ?? null,
      live: manifest?.live ?? null,
      windowStart: manifest === null ? null : windowStart(manifest),
      behindLiveS: this.live.status().behindLiveS,
      generator: manifest?.generator ?? null,
      streamFps: manifest?.fps ?? null,
      bufferS,
      maxBufferS: s.maxBufferS,
      throughputKbps: this.estimator.estimateKbps(),
      daemonFps: pace.fps,
      daemonDevice: pace.device,
      daemonGeneratorId: pace.generatorId,
      daemonQueue: pace.queueDepth,
      daemonConnected: this.daemon.connected,
      serverConnected: this.server.connected,
      stalls: monitor.stalls,
      stallS: monitor.stallS,
      startupS: monitor.startupS,
      startupMarks: monitor.startupMarks,
      currentTime: video.currentTime,
      duration: video.duration,
      paused: video.paused,
      decodedFrames: quality?.totalVideoFrames ?? null,
      droppedFrames: quality?.droppedVideoFrames ?? null,
      blocked: s.blocked,
      statsSent: this.telemetry.sent,
    };
  }

  destroy() {
    this.telemetry.destroy();
    this.stream.destroy();
    this.manifests.destroy();
    this.session.destroy();
    this.seeks.destroy();
    this.loader.destroy();
    this.errors.destroy();
    this.monitor.destroy();
    this.pace.destroy();
    this.levels.destroy();
    this.notices.destroy();
    this.server.destroy();
    this.daemon.destroy();
    this.buffer.destroy();
    this.bus.destroy();
  }
}
