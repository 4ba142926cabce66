/**
 * The playback monitor: watches the video element for the stream controller, which calls
 * poll() from its tick.
 *
 * - Startup = first presented frame (`requestVideoFrameCallback`, else `playing`) minus the
 *   moment the stream could start: the channel's start, or, when nothing could play before, a
 *   daemon that connected after none answered (DAEMON_CONNECTED after DAEMON_CLOSED) or a retry
 *   of a blocked stream. Milestones on the way (manifest, init state, daemon init, first chunk
 *   forwarded, first segment, first append, first frame) are kept as seconds after that moment.
 * - Stall = buffer under STALL_BUFFER_S (or 1.5 frame durations) while playing, not while
 *   seeking, not at the end; counted from startup on (StallCounter, pure).
 * - Playback held until data is in (a seek outside the buffer, a blocked stream whose buffer
 *   ran out) resumes once SEEK_RESUME_BUFFER_S is buffered.
 *
 * Triggers PLAYBACK_STARTED, STALL_STARTED, STALL_ENDED and the `autoplay` NOTICE.
 */
import { Events } from '../events.js';

export const STALL_BUFFER_S = 0.1; // below this (or 1.5 frame durations) while playing = stalled
export const SEEK_RESUME_BUFFER_S = 1; // after a seek outside the buffer, play on once this much is buffered

/**
 * Whether playback is starved: playing, not seeking, not at the end of an ended stream, and less
 * buffered than the stall threshold. The last buffered frame lasts 1/fps: at low frame rates it
 * alone exceeds 0.1 s, so a frozen picture would never count as a stall without the 1.5-frame margin.
 */
export function isStarving({ paused, seeking, currentTime, duration, ended, fps, bufferS }) {
  const atEnd = ended && currentTime >= duration - STALL_BUFFER_S;
  return !paused && !seeking && !atEnd && bufferS < Math.max(STALL_BUFFER_S, 1.5 / fps);
}

/** Stall accounting on a clock passed in (seconds): how many, how long, whether one goes on. */
export class StallCounter {
  constructor() {
    this.count = 0;
    this.totalS = 0; // stalls that ended
    this.startS = null; // start of the stall going on
  }

  /** Feeds one observation; returns 'started' or 'ended' when a stall begins or ends at `nowS`, else null. */
  update(starving, nowS) {
    if (starving && this.startS === null) {
      this.startS = nowS;
      this.count += 1;
      return 'started';
    }
    if (!starving && this.startS !== null) {
      this.totalS += nowS - this.startS;
      this.startS = null;
      return 'ended';
    }
    return null;
  }

  get stalled() {
    return this.startS !== null;
  }

  /** Total stall seconds including a stall still going on. */
  secondsAt(nowS) {
    return this.totalS + (this.startS === null ? 0 : nowS - this.startS);
  }
}

export class PlaybackMonitor {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, buffer: import('./buffer-controller.js').BufferController, clock: () => number}} deps
   */
  constructor(bus, { video, buffer, clock }) {
    Object.assign(this, { bus, video, buffer, clock });
    this.handlers = {
      [Events.DAEMON_CONNECTED]: () => this.onDaemonConnected(),
      [Events.DAEMON_CLOSED]: () => this.onDaemonClosed(),
    };
    this.run = 0; // which channel start a pending first-frame callback belongs to
    this.reset();
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** A new channel: the startup clock starts now, nothing played or stalled yet. */
  reset() {
    this.run += 1;
    this.startS = this.clock();
    this.startupS = null;
    this.marks = {}; // seconds after startS of each first: manifest, initState, daemonInit, chunk, segment, append, frame
    this.daemonAway = false; // the daemon closed (or never answered) before the first frame
    this.playRequested = false;
    this.resumeWhenBuffered = false; // paused (an out-of-buffer seek, a blocked stream), to resume once data is in
    this.stalls = new StallCounter();
  }

  onDaemonConnected() {
    if (this.daemonAway) this.restartClockUnlessStarted(); // the wait was no startup
    this.daemonAway = false;
  }

  onDaemonClosed() {
    this.daemonAway = true;
  }

  /** Startup is measured from now on (what came before was waiting for the viewer, not startup). */
  restartClockUnlessStarted() {
    if (this.startupS !== null) return;
    this.startS = this.clock();
    this.marks = {};
  }

  /** Records the first time of milestone `name`. */
  mark(name) {
    if (!(name in this.marks)) this.marks[name] = this.clock() - this.startS;
  }

  /** The first media is in the buffer: the playhead goes where it is (a live viewer starts far from 0 s), play. */
  startPlayback(firstChunkS) {
    if (this.playRequested) return;
    this.playRequested = true;
    if (!this.buffer.isBuffered(this.video.currentTime)) this.video.currentTime = firstChunkS;
    this.#watchFirstFrame();
    this.video.play().catch((error) => this.bus.trigger(Events.NOTICE, {
      kind: 'autoplay', level: 'warn', text: `Press play to start (${error.message})`,
    }));
  }

  /** Pauses a playing video until poll() finds enough buffered. */
  holdUntilBuffered() {
    if (this.video.paused) return;
    this.video.pause();
    this.resumeWhenBuffered = true;
  }

  /** One look at the video element (the stream controller's tick): stalls, then a held playback. */
  poll(nowS, { ended, fps, blocked }) {
    const video = this.video;
    if (this.startupS !== null) {
      const starving = isStarving({
        paused: video.paused, seeking: video.seeking, currentTime: video.currentTime, duration: video.duration,
        ended, fps, bufferS: this.buffer.bufferAheadS(),
      });
      const change = this.stalls.update(starving, nowS);
      if (change === 'started') this.bus.trigger(Events.STALL_STARTED, { atS: nowS });
      else if (change === 'ended') this.bus.trigger(Events.STALL_ENDED, { atS: nowS });
    }
    if (!this.resumeWhenBuffered || video.seeking || blocked) return;
    const remaining = Number.isFinite(video.duration) ? video.duration - video.currentTime : Infinity;
    if (this.buffer.bufferAheadS() < Math.min(SEEK_RESUME_BUFFER_S, remaining - STALL_BUFFER_S)) return;
    this.resumeWhenBuffered = false;
    video.play().catch(() => {});
  }

  /** Whether the first frame was presented. */
  get started() {
    return this.startupS !== null;
  }

  /** Whether a stall goes on (the ABR context's `rebuffering`). */
  get rebuffering() {
    return this.stalls.stalled;
  }

  /** Read-only: startup, its milestones, stalls (at `nowS`). */
  status(nowS = this.clock()) {
    return {
      startupS: this.startupS,
      startupMarks: { ...this.marks },
      sinceStartS: nowS - this.startS,
      stalls: this.stalls.count,
      stallS: this.stalls.secondsAt(nowS),
    };
  }

  #watchFirstFrame() {
    const video = this.video;
    const run = this.run;
    const done = () => {
      if (this.startupS !== null || run !== this.run) return;
      this.startupS = this.clock() - this.startS;
      this.mark('frame');
      this.bus.trigger(Events.PLAYBACK_STARTED, { startupS: this.startupS });
    };
    if (typeof video.requestVideoFrameCallback === 'function') video.requestVideoFrameCallback(() => done());
    else video.addEventListener('playing', done, { once: true });
  }

  destroy() {
    this.unregisterListeners();
  }
}
