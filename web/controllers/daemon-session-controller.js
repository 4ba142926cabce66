/**
 * The daemon session controller: the generation session the local daemon runs for the stream,
 * from `open` to the segments in the SourceBuffer. The stream controller decides what to fetch
 * and forward; this one carries it to the daemon and back.
 *
 * - Open: the channel's init state (INIT_STATE_LOADED, taken once: a reconnect to the server
 *   leaves the daemon's stream unchanged) goes with the manifest in `open`; reopen() sends it
 *   again for a fresh MediaSource, the daemon link after each reconnect.
 * - Init: the daemon answers each `open` with an fMP4 init segment (DAEMON_INIT). Once it is in
 *   the SourceBuffer the session is ready and DAEMON_READY tells the stream controller (a fresh
 *   session expects chunk 0 or a seek); one the SourceBuffer refuses is DAEMON_INIT_FAILED (the
 *   error controller blocks the stream).
 * - Chunks go through the DaemonQueue (daemon-queue.js: a `seek` first when the daemon expects
 *   another one); each segment (one GOP) goes into the SourceBuffer at its place on the Timeline,
 *   and a chunk's last GOP samples the daemon's pace. A daemon that closes takes the session and
 *   its chunks with it.
 * - While nothing can come (the stream is blocked, or no daemon answers) a stream with nothing
 *   buffered lets go of its MediaSource (the next init segment brings a fresh one), and a blocked
 *   one whose buffer ran out is held paused: no loading spinner over video that cannot come.
 */
import { Events } from '../events.js';
import { DaemonQueue } from './daemon-queue.js';
import { STALL_BUFFER_S } from './playback-monitor.js';

export class DaemonSessionController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, daemon: import('./daemon-link.js').DaemonLink, buffer: import('./buffer-controller.js').BufferController,
   *          manifests: import('./manifest-controller.js').ManifestController, levels: import('./level-controller.js').LevelController,
   *          pace: import('./daemon-pace.js').DaemonPace, monitor: import('./playback-monitor.js').PlaybackMonitor}} deps
   */
  constructor(bus, { video, daemon, buffer, manifests, levels, pace, monitor }) {
    Object.assign(this, { bus, video, daemon, buffer, manifests, levels, pace, monitor });
    this.handlers = {
      [Events.INIT_STATE_LOADED]: (p) => this.onInitStateLoaded(p),
      [Events.DAEMON_INIT]: (p) => this.onDaemonInit(p),
      [Events.DAEMON_CLOSED]: () => this.onDaemonClosed(),
      [Events.SEGMENT_GENERATED]: (p) => this.onSegment(p),
    };
    this.queue = new DaemonQueue(daemon); // chunks forwarded, not wholly back
    this.reset();
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** A new channel: no init state, no session, nothing at the daemon, its pace measured afresh. */
  reset() {
    this.initState = null;
    this.ready = false; // the daemon sent `init` for the open stream and it is in the SourceBuffer
    this.queue.clear(null);
    this.pace.reset();
  }

  onInitStateLoaded({ channel, data }) {
    const { manifest } = this.manifests;
    if (channel !== this.manifests.channel || manifest === null) return;
    if (this.initState !== null) return; // a reconnect to the server: the daemon's stream is unchanged
    this.monitor.mark('initState');
    this.initState = data;
    this.daemon.openStream(manifest, data);
  }

  onDaemonInit({ mime, data }) {
    // A fresh generation session (open or re-open after a reconnect): it expects chunk 0 or a seek.
    if (!this.buffer.attached) this.buffer.attach(); // let go of while nothing could come
    this.buffer
      .appendInit(mime, data)
      .then(() => {
        this.monitor.mark('daemonInit');
        this.ready = this.buffer.ready;
        this.bus.trigger(Events.DAEMON_READY, {});
      })
      .catch((error) => this.bus.trigger(Events.DAEMON_INIT_FAILED, { message: error.message }));
  }

  onDaemonClosed() {
    this.ready = false;
    this.queue.drop();
  }

  onSegment(segment) {
    const back = this.queue.segment(segment);
    if (back === null) return; // from before a seek or resync
    const { entry, complete } = back;
    if (complete) this.pace.sample(segment.generationMs, entry.framesBack); // the last part's time covers the chunk
    const { level, data } = segment;
    this.monitor.mark('segment');
    this.buffer.appendSegment({ chunk: entry.virtual, level, data, complete, offsetS: this.manifests.timeline.offsetS(entry.virtual) });
  }

  /** Sends the chunk a `get` brought (`expected`: what was asked for); false when no session is ready or a send failed. */
  forward(expected, frame) {
    return this.ready && this.queue.forward(expected, frame);
  }

  /** A fresh session for a fresh MediaSource: `open` again (once the init state came). */
  reopen() {
    this.ready = false;
    if (this.initState !== null) this.daemon.openStream(this.manifests.manifest, this.initState);
  }

  /** Blocked, or no daemon: no MediaSource while nothing is buffered; blocked and run out: paused. */
  holdWhileNothingComes(blocked) {
    if (!blocked && this.daemon.connected) return;
    if (!this.levels.anyBuffered) {
      if (!this.buffer.attached) return;
      this.buffer.detach();
      this.ready = false;
    } else if (blocked && !this.video.paused && this.buffer.bufferAheadS() < STALL_BUFFER_S) {
      this.monitor.holdUntilBuffered();
    }
  }

  /** Read-only: whether the session is ready, how many chunks are at the daemon. */
  status() {
    return { ready: this.ready, chunksAtDaemon: this.queue.length };
  }

  destroy() {
    this.unregisterListeners();
  }
}
