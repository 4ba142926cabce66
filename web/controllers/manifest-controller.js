/**
 * The manifest controller: the channel being played, its manifest (every update the server
 * sends: a live window moves, a feed finishes) and the Timeline of its chunks (timeline.js;
 * `loop` makes a finished ladder endless). Each update goes to the live and level controllers;
 * the first gives the MediaSource its duration (Infinity for an endless or live stream). Then
 * MANIFEST_PARSED tells the stream controller, which decides where a first manifest starts.
 */
import { Events } from '../events.js';
import { Timeline } from './timeline.js';

/** The MediaSource duration of a stream: a finished ladder's length, else endless. */
export function streamDuration(manifest, timeline) {
  return timeline.endless || manifest.live ? Infinity : timeline.passS;
}

export class ManifestController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, buffer: import('./buffer-controller.js').BufferController,
   *          live: import('./live-controller.js').LiveController, levels: import('./level-controller.js').LevelController,
   *          monitor: import('./playback-monitor.js').PlaybackMonitor, loop?: boolean}} deps
   */
  constructor(bus, { video, buffer, live, levels, monitor, loop = false }) {
    Object.assign(this, { bus, video, buffer, live, levels, monitor, loop });
    this.handlers = { [Events.MANIFEST_LOADED]: (p) => this.onManifestLoaded(p) };
    this.reset(null);
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** A new channel: no manifest yet. */
  reset(channel) {
    this.channel = channel;
    this.manifest = null; // the server's manifest (null before it came)
    this.timeline = null;
  }

  onManifestLoaded({ channel, manifest }) {
    if (channel !== this.channel) return;
    const first = this.manifest === null;
    this.monitor.mark('manifest');
    this.manifest = manifest;
    this.timeline = new Timeline(manifest, this.loop);
    this.live.setManifest(manifest, this.timeline);
    this.levels.setManifest(manifest, this.timeline);
    if (first) this.buffer.setDuration(streamDuration(manifest, this.timeline));
    this.bus.trigger(Events.MANIFEST_PARSED, { manifest, timeline: this.timeline, first });
  }

  /** Read-only: the channel, its manifest, and the place on screen (Player.snapshot, Player.seek). */
  status() {
    const { timeline } = this;
    return {
      channel: this.channel,
      manifest: this.manifest,
      endless: timeline?.endless ?? false, // a looped ladder
      playing: timeline === null ? null : timeline.split(timeline.atTime(this.video.currentTime)), // {pass, chunk} on screen
    };
  }

  destroy() {
    this.unregisterListeners();
  }
}
