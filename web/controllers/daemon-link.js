/**
 * The local daemon link (ws://127.0.0.1:9090): open -> init; forwarded chunk -> segment;
 * seek; status. Reconnects with backoff (the daemon may start after the page) and re-sends
 * `open` after each reconnect. Stops retrying when the daemon refuses this page's origin.
 */
import { Events } from '../events.js';
import * as protocol from '../protocol.js';
import { PeerLink } from './peer-link.js';

export class DaemonLink extends PeerLink {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{url: string, session?: string, WebSocketImpl?: typeof WebSocket}} config
   */
  constructor(bus, { url, session, WebSocketImpl }) {
    super(bus, 'daemon', { url, WebSocketImpl });
    this.session = session;
    this.stream = null; // {manifest, initState} of the open stream
    this.originRefused = false;
  }

  /** Opens (or re-opens) generation of the stream a manifest + init.bin describe. */
  openStream(manifest, initState) {
    this.stream = { manifest, initState };
    if (this.link.connected) this.link.send(protocol.open(manifest, initState, this.session));
  }

  /** Forwards the server's `chunk` message unchanged; false when not connected. */
  forwardChunk(frame) {
    return this.link.send(frame);
  }

  /** Announces that the next chunk is `chunk` (not the successor of the last one sent). */
  seek(chunk) {
    return this.link.send(protocol.seek(chunk));
  }

  /** Reconnect now, with the backoff reset (user asked to retry). */
  retryNow() {
    this.originRefused = false;
    this.link.restart();
  }

  handleOpen() {
    this.bus.trigger(Events.DAEMON_CONNECTED, { url: this.url });
    if (this.stream !== null) this.link.send(protocol.open(this.stream.manifest, this.stream.initState, this.session));
  }

  handleText(text) {
    const message = this.decodeOrReport(() => protocol.decodeControl(text, protocol.MAX_CONTROL_CHARS));
    if (message === null) return;
    if (message.type === 'status') {
      this.bus.trigger(Events.DAEMON_STATUS, {
        fps: Number(message.fps),
        queueDepth: Number(message.queue_depth),
        device: String(message.device ?? ''),
        generatorId: String(message.generator_id ?? ''),
      });
    } else if (message.type === 'error') {
      if (message.code === protocol.ErrorCode.FORBIDDEN_ORIGIN) {
        this.originRefused = true;
        this.link.stop(1000, 'origin refused'); // retrying cannot help until the daemon is restarted
      }
      this.bus.trigger(Events.DAEMON_ERROR, {
        code: String(message.code),
        message: String(message.message),
        chunk: message.chunk,
        level: message.level,
      });
    }
  }

  handleBinary(buffer) {
    const frame = this.decodeOrReport(() => protocol.decodeBinary(buffer, protocol.MAX_MEDIA_PAYLOAD_BYTES));
    if (frame === null) return;
    const { header, payload } = frame;
    if (header.type === 'init') {
      this.link.markHealthy();
      this.bus.trigger(Events.DAEMON_INIT, { mime: String(header.mime), data: payload });
    } else if (header.type === 'segment') {
      this.bus.trigger(Events.SEGMENT_GENERATED, {
        chunk: header.chunk,
        level: header.level,
        part: header.part,
        parts: header.parts,
        frames: header.frames,
        generationMs: header.generation_ms,
        encodeMs: header.encode_ms,
        data: payload,
      });
    }
  }

  handleClose(info) {
    this.bus.trigger(Events.DAEMON_CLOSED, { url: this.url, originRefused: this.originRefused, ...info });
  }
}
