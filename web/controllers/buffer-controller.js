/**
 * Media Source Extensions: one MediaSource and one SourceBuffer ('segments' mode: the
 * daemon's segments carry their place on the stream timeline in tfdt), every operation
 * through a BufferOperationQueue. Appends the daemon's init segment and media segments,
 * trims the buffer behind the playhead, and handles QuotaExceededError the dash.js way
 * (shrink the buffer target to 80% of what is buffered, trim, retry).
 */
import { Events } from '../events.js';
import { BufferOperationQueue } from './buffer-operation-queue.js';

export const BACK_BUFFER_S = 10; // seconds kept behind the playhead
export const QUOTA_RETRY_MS = 500; // wait before retrying an append refused for quota
export const QUOTA_MAX_RETRIES = 6; // then the segment is dropped and the stream resynced
export const GAP_TOLERANCE_S = 0.1; // a hole this small between ranges counts as buffered

export class BufferController {
  /** @param {import('../events.js').EventBus} bus @param {{video: HTMLVideoElement}} config */
  constructor(bus, { video }) {
    this.bus = bus;
    this.video = video;
    this.mediaSource = null;
    this.sourceBuffer = null;
    this.queue = null;
    this.mime = null;
    this.objectUrl = null;
    this.sourceOpen = null; // promise resolved when the MediaSource is open
    this.durationS = NaN;
    this.offsetS = 0; // timestampOffset of the SourceBuffer
    this.seekableEndS = null; // end of the live seekable range last set
    this.seekableStartS = null; // and its start
  }

  /** A fresh MediaSource on the video element (start, channel switch, decode error). */
  attach() {
    this.detach();
    const mediaSource = new MediaSource();
    this.mediaSource = mediaSource;
    this.sourceOpen = new Promise((resolve) => mediaSource.addEventListener('sourceopen', resolve, { once: true }));
    this.objectUrl = URL.createObjectURL(mediaSource);
    this.video.src = this.objectUrl;
  }

  detach() {
    this.queue?.destroy();
    this.queue = null;
    this.sourceBuffer = null;
    this.mime = null;
    this.offsetS = 0;
    this.seekableEndS = null;
    this.seekableStartS = null;
    if (this.objectUrl !== null) {
      this.video.removeAttribute('src');
      this.video.load();
      URL.revokeObjectURL(this.objectUrl);
    }
    this.objectUrl = null;
    this.mediaSource = null;
  }

  get ready() {
    return this.queue !== null;
  }

  /** Whether a MediaSource is on the video element (between attach and detach). */
  get attached() {
    return this.mediaSource !== null;
  }

  /** Appends the daemon's init segment (creating the SourceBuffer the first time). */
  async appendInit(mime, data) {
    const mediaSource = this.mediaSource;
    await this.sourceOpen;
    if (mediaSource !== this.mediaSource) return; // re-attached meanwhile
    if (!MediaSource.isTypeSupported(mime)) {
      throw new Error(`this browser cannot play the daemon's video format ${mime}`);
    }
    if (this.sourceBuffer === null) {
      this.sourceBuffer = mediaSource.addSourceBuffer(mime);
      this.sourceBuffer.mode = 'segments';
      this.queue = new BufferOperationQueue(this.sourceBuffer);
      if (!Number.isNaN(this.durationS)) this.setDuration(this.durationS);
    } else if (mime !== this.mime) {
      const sourceBuffer = this.sourceBuffer;
      this.queue.append({ label: 'changeType', execute: () => sourceBuffer.changeType(mime) });
    }
    this.mime = mime;
    this.#appendBytes('init segment', data, () => {});
  }

  /**
   * Appends one media segment (a GOP of a chunk); BUFFER_APPENDED {chunk, level, complete} when
   * it is in (`complete`: the chunk's last GOP). `offsetS` shifts the segment's own timestamps
   * (a looped ladder's later passes, see Timeline).
   */
  appendSegment({ chunk, level, data, complete = true, offsetS = 0 }) {
    if (!this.ready) return;
    if (offsetS !== this.offsetS) {
      const sourceBuffer = this.sourceBuffer;
      this.offsetS = offsetS;
      this.queue.append({ label: 'timestampOffset', execute: () => { sourceBuffer.timestampOffset = offsetS; } });
    }
    this.#appendBytes(`segment of chunk ${chunk}`, data, () => {
      this.bus.trigger(Events.BUFFER_APPENDED, { chunk, level, complete });
      this.trimBackBuffer(BACK_BUFFER_S);
    });
  }

  /** Stream length for the seek bar (Infinity: live or looped). */
  setDuration(seconds) {
    this.durationS = seconds;
    if (!this.ready || Number.isNaN(seconds)) return;
    const mediaSource = this.mediaSource;
    this.queue.append({
      label: 'set duration',
      execute: () => {
        if (mediaSource.readyState === 'open') mediaSource.duration = seconds;
      },
    });
  }

  /**
   * With an endless duration (live or looped ladder) the element may only seek inside
   * [startS, endS] (a live channel's window): MediaSource.setLiveSeekableRange (without it the
   * element clamps seeks to the buffered data).
   */
  setSeekableEnd(endS, startS = 0) {
    const mediaSource = this.mediaSource;
    if (mediaSource === null || mediaSource.readyState !== 'open' || typeof mediaSource.setLiveSeekableRange !== 'function') return;
    if (this.seekableEndS === endS && this.seekableStartS === startS) return;
    this.seekableEndS = endS;
    this.seekableStartS = startS;
    mediaSource.setLiveSeekableRange(startS, endS);
  }

  /** Removes what lies more than `keepS` behind the playhead. */
  trimBackBuffer(keepS) {
    if (!this.ready) return;
    const end = this.video.currentTime - keepS;
    const ranges = this.sourceBuffer.buffered;
    if (ranges.length === 0 || ranges.start(0) >= end) return;
    this.#remove(0, end);
  }

  /** Removes everything buffered (seek outside the buffer). */
  flush() {
    if (!this.ready) return;
    this.queue.clear();
    this.#remove(0, Infinity);
  }

  /** Signals the end of a finished (non-live) stream so the video can end. */
  endOfStream() {
    if (!this.ready) return;
    const mediaSource = this.mediaSource;
    this.queue.append({
      label: 'end of stream',
      execute: () => {
        if (mediaSource.readyState === 'open') mediaSource.endOfStream();
      },
    });
  }

  /** Seconds buffered ahead of `time` (contiguous, small gaps tolerated). */
  bufferAheadS(time = this.video.currentTime) {
    const ranges = this.video.buffered;
    let end = null;
    for (let i = 0; i < ranges.length; i++) {
      const start = ranges.start(i);
      const rangeEnd = ranges.end(i);
      if (end === null) {
        if (start <= time + GAP_TOLERANCE_S && rangeEnd > time) end = rangeEnd;
      } else if (start <= end + GAP_TOLERANCE_S) {
        end = Math.max(end, rangeEnd);
      }
    }
    return end === null ? 0 : Math.max(0, end - time);
  }

  /** Whether `time` lies inside the buffered data. */
  isBuffered(time) {
    return this.bufferAheadS(time) > GAP_TOLERANCE_S;
  }

  destroy() {
    this.detach();
  }

  #remove(start, end) {
    const sourceBuffer = this.sourceBuffer;
    const mediaSource = this.mediaSource;
    this.queue.append({
      label: 'remove',
      execute: () => {
        if (mediaSource.readyState === 'closed') return;
        const duration = mediaSource.duration;
        const stop = Number.isFinite(duration) ? Math.min(end, duration) : end;
        if (Number.isNaN(duration) || stop <= start) return;
        sourceBuffer.remove(start, stop);
      },
    });
  }

  #appendBytes(label, data, onComplete, retries = 0) {
    const sourceBuffer = this.sourceBuffer;
    const operation = {
      label,
      execute: () => sourceBuffer.appendBuffer(data),
      onComplete,
      onError: (error) => {
        if (error.name === 'QuotaExceededError' && retries < QUOTA_MAX_RETRIES) {
          this.#onQuotaExceeded(label, data, onComplete, retries);
        } else {
          this.bus.trigger(Events.ERROR, { source: 'buffer', message: `${label}: ${error.message}`, fatal: false, error });
        }
      },
    };
    if (retries > 0) this.queue.prepend(operation);
    else this.queue.append(operation);
  }

  #onQuotaExceeded(label, data, onComplete, retries) {
    // dash.js: cap the buffer at 80% of what the browser held, free the back buffer, retry.
    const maxBufferS = Math.max(2, 0.8 * this.bufferAheadS());
    this.bus.trigger(Events.BUFFER_FULL, { maxBufferS });
    this.trimBackBuffer(1);
    const queue = this.queue;
    setTimeout(() => {
      if (this.queue === queue) this.#appendBytes(label, data, onComplete, retries + 1);
    }, QUOTA_RETRY_MS);
  }
}
