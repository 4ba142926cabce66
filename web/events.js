/**
 * The player's events (one frozen table) and the bus that carries them.
 *
 * Payloads:
 * @typedef {{url: string}} LinkPayload                                   *_CONNECTED
 * @typedef {{url: string, code: number, reason: string, retryInMs: number|null, everOpened: boolean}} LinkClosedPayload
 * @typedef {{channel: string, manifest: object}} ManifestPayload           MANIFEST_LOADED
 * @typedef {{manifest: object, timeline: import('./controllers/timeline.js').Timeline, first: boolean}} ManifestParsedPayload  MANIFEST_PARSED (the manifest controller took an update of the playing channel's manifest)
 * @typedef {{channel: string, data: Uint8Array}} InitStatePayload          INIT_STATE_LOADED
 * @typedef {{chunk: number, level: number, bytes: number, seconds: number, endS: number, frame: ArrayBuffer, prefixBytes: number, closed: boolean}} ChunkPayload  CHUNK_LOADED
 * @typedef {{code: string, message: string, chunk?: number, level?: number}} RemoteErrorPayload  SERVER_ERROR, DAEMON_ERROR
 * @typedef {{mime: string, data: Uint8Array}} DaemonInitPayload            DAEMON_INIT
 * @typedef {{}} DaemonReadyPayload                                      DAEMON_READY (the daemon's init segment is in the SourceBuffer: a fresh session)
 * @typedef {{message: string}} DaemonInitFailedPayload                   DAEMON_INIT_FAILED (the SourceBuffer refused it)
 * @typedef {{chunk: number, level: number, part: number, parts: number, frames: number, generationMs: number, encodeMs: number, data: Uint8Array}} SegmentPayload  SEGMENT_GENERATED (one GOP of a chunk)
 * @typedef {{fps: number, queueDepth: number, device: string, generatorId: string}} DaemonStatusPayload  DAEMON_STATUS
 * @typedef {{chunk: number, level: number, complete: boolean}} AppendedPayload  BUFFER_APPENDED
 * @typedef {{maxBufferS: number}} BufferFullPayload                        BUFFER_FULL
 * @typedef {{virtual: number}} SeekPayload                               SEEK_OUTSIDE_BUFFER (the seek controller flushed the buffer: fetch from virtual chunk `virtual`)
 * @typedef {{level: number, auto: boolean}} LevelPayload                   LEVEL_SWITCHING
 * @typedef {{startupS: number}} StartupPayload                             PLAYBACK_STARTED
 * @typedef {{atS: number}} StallPayload                                    STALL_STARTED, STALL_ENDED
 * @typedef {{kind: string, text: string|null, level: 'info'|'warn'|'error'}} NoticePayload  NOTICE
 * @typedef {{source: string, message: string, fatal: boolean, error?: Error}} ErrorPayload  ERROR
 */

export const Events = Object.freeze({
  SERVER_CONNECTED: 'serverConnected',
  SERVER_CLOSED: 'serverClosed',
  MANIFEST_LOADED: 'manifestLoaded',
  MANIFEST_PARSED: 'manifestParsed',
  INIT_STATE_LOADED: 'initStateLoaded',
  CHUNK_LOADED: 'chunkLoaded',
  SERVER_ERROR: 'serverError',
  DAEMON_CONNECTED: 'daemonConnected',
  DAEMON_CLOSED: 'daemonClosed',
  DAEMON_INIT: 'daemonInit',
  DAEMON_READY: 'daemonReady',
  DAEMON_INIT_FAILED: 'daemonInitFailed',
  SEGMENT_GENERATED: 'segmentGenerated',
  DAEMON_STATUS: 'daemonStatus',
  DAEMON_ERROR: 'daemonError',
  BUFFER_APPENDED: 'bufferAppended',
  BUFFER_FULL: 'bufferFull',
  SEEK_OUTSIDE_BUFFER: 'seekOutsideBuffer',
  LEVEL_SWITCHING: 'levelSwitching',
  PLAYBACK_STARTED: 'playbackStarted',
  STALL_STARTED: 'stallStarted',
  STALL_ENDED: 'stallEnded',
  NOTICE: 'notice',
  ERROR: 'error',
});

/** Event bus whose trigger() turns a listener's exception into an ERROR event (hls.js habit). */
export class EventBus {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
  }

  on(event, listener) {
    if (!Object.values(Events).includes(event)) throw new RangeError(`unknown event '${event}'`);
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(listener);
  }

  off(event, listener) {
    this.listeners.get(event)?.delete(listener);
  }

  /** on() for each `{event: listener}` of a controller's handler table, in its order. */
  onEach(handlers) {
    for (const [event, listener] of Object.entries(handlers)) this.on(event, listener);
  }

  /** off() for each entry of a handler table. */
  offEach(handlers) {
    for (const [event, listener] of Object.entries(handlers)) this.off(event, listener);
  }

  trigger(event, payload) {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        listener(payload);
      } catch (error) {
        if (event === Events.ERROR) {
          console.error('error listener failed', error);
        } else {
          this.trigger(Events.ERROR, { source: `listener of ${event}`, message: String(error?.message ?? error), fatal: false, error });
        }
      }
    }
  }

  destroy() {
    this.listeners.clear();
  }
}
