/**
 * The seek controller: what the video element's `seeking` does to the stream.
 *
 * - Inside the buffer: nothing, the element plays it from there.
 * - Outside a live window: a new seek, to the window's border (live-controller.js clampSeek).
 * - A legacy `chained` stream can only be played from chunk 0: the page says so.
 * - Anywhere else: flush the buffer (the level controller forgets the buffered levels, the live
 *   controller the skipped gaps), hold playback until a little is buffered (landing mid-chunk
 *   leaves less than a chunk ahead), and SEEK_OUTSIDE_BUFFER tells the stream controller to
 *   fetch from the target chunk (with its prefix, after a daemon `seek`).
 */
import { Events } from '../events.js';

/**
 * What a seek to `targetS` asks for, given where it may land (`allowedS`) and whether a time is
 * buffered: {kind: 'clamp', toS}, {kind: 'buffered'}, {kind: 'refused'} (a chained stream away
 * from chunk 0) or {kind: 'restart', virtual} (the virtual chunk to fetch from). Pure.
 */
export function seekAction(manifest, timeline, targetS, allowedS, isBuffered) {
  if (allowedS !== targetS) return { kind: 'clamp', toS: allowedS };
  if (isBuffered(targetS)) return { kind: 'buffered' };
  const virtual = timeline.atTime(targetS);
  if (manifest.prev_latent_rule === 'chained' && timeline.split(virtual).chunk !== 0) return { kind: 'refused' };
  return { kind: 'restart', virtual };
}

export class SeekController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, buffer: import('./buffer-controller.js').BufferController,
   *          manifests: import('./manifest-controller.js').ManifestController, live: import('./live-controller.js').LiveController,
   *          levels: import('./level-controller.js').LevelController, monitor: import('./playback-monitor.js').PlaybackMonitor}} deps
   */
  constructor(bus, { video, buffer, manifests, live, levels, monitor }) {
    Object.assign(this, { bus, video, buffer, manifests, live, levels, monitor });
    this.onVideoSeeking = this.onVideoSeeking.bind(this);
  }

  registerListeners() {
    this.video.addEventListener('seeking', this.onVideoSeeking);
  }

  unregisterListeners() {
    this.video.removeEventListener('seeking', this.onVideoSeeking);
  }

  onVideoSeeking() {
    const { manifest, timeline } = this.manifests;
    if (manifest === null) return;
    const targetS = this.video.currentTime;
    const action = seekAction(manifest, timeline, targetS, this.live.clampSeek(targetS), (timeS) => this.buffer.isBuffered(timeS));
    if (action.kind === 'clamp') {
      this.video.currentTime = action.toS; // outside a live window: a new seek, to its border
    } else if (action.kind === 'refused') {
      this.bus.trigger(Events.NOTICE, {
        kind: 'seek', level: 'warn',
        text: 'This stream uses the legacy chained rule: it can only be played from the start.',
      });
    } else if (action.kind === 'restart') {
      this.buffer.flush();
      this.levels.flushed();
      this.live.clearSkipped();
      this.monitor.holdUntilBuffered(); // landing mid-chunk leaves less than a chunk ahead
      this.bus.trigger(Events.SEEK_OUTSIDE_BUFFER, { virtual: action.virtual });
    }
  }

  destroy() {
    this.unregisterListeners();
  }
}
