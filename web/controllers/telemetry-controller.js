/**
 * Reports playback to the media server: a `stats` message every second (Puffer's `timer`
 * client-info) and one right away on startup, on each stall (`rebuffer`) and when playback
 * resumes after it (`play`). Values come from the player's snapshot (Player.snapshot).
 */
import { Events } from '../events.js';

export const STATS_INTERVAL_MS = 1000; // one `stats` message per second

export class TelemetryController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{server: import('./server-link.js').ServerLink, snapshot: () => object}} deps
   */
  constructor(bus, { server, snapshot }) {
    this.bus = bus;
    this.server = server;
    this.snapshot = snapshot;
    this.timer = null;
    this.sent = 0;
    this.handlers = {
      [Events.PLAYBACK_STARTED]: () => this.report('startup'),
      [Events.STALL_STARTED]: () => this.report('rebuffer'),
      [Events.STALL_ENDED]: () => this.report('play'),
    };
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  start() {
    this.registerListeners();
    this.timer = setInterval(() => this.report('timer'), STATS_INTERVAL_MS);
  }

  /** Sends one `stats` message (nothing before the first manifest: no level to report). */
  report(event) {
    const s = this.snapshot();
    if (s.levelId === null) return;
    const sent = this.server.sendStats({
      event,
      buffer_s: round(s.bufferS, 3),
      stalls: s.stalls,
      stall_s: round(s.stallS, 3),
      level: s.levelId,
      throughput_kbps: s.throughputKbps === null ? null : round(s.throughputKbps, 1),
      daemon_fps: s.daemonFps === null ? null : round(s.daemonFps, 2),
      behind_live_s: s.behindLiveS === null ? null : round(s.behindLiveS, 3),
      startup_s: s.startupS === null ? null : round(s.startupS, 3),
      chunk: s.chunk,
      decoded_frames: s.decodedFrames,
      dropped_frames: s.droppedFrames,
      position_s: round(s.currentTime, 3),
    });
    if (sent) this.sent += 1;
  }

  destroy() {
    clearInterval(this.timer);
    this.timer = null;
    this.unregisterListeners();
  }
}

function round(value, digits) {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
