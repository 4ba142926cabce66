/**
 * The media server link (/ws): hello -> manifest + init_state; get -> chunk; ack and stats up.
 * Reconnects with backoff and says hello again; it only carries messages, the stream
 * controller decides what to ask for.
 */
import { Events } from '../events.js';
import * as protocol from '../protocol.js';
import { PeerLink } from './peer-link.js';

export class ServerLink extends PeerLink {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{url: string, channel: string, abr: string, userAgent?: string, clock: () => number, WebSocketImpl?: typeof WebSocket}} config
   */
  constructor(bus, { url, channel, abr, userAgent = '', clock, WebSocketImpl }) {
    super(bus, 'server', { url, WebSocketImpl });
    this.channel = channel;
    this.abr = abr;
    this.userAgent = userAgent;
    this.clock = clock;
    /** requests in flight, oldest first: answers come in request order */
    this.requests = [];
  }

  /** Asks for chunk `chunk` of `level` (with the switch prefix when `prefix`); false if offline. */
  requestChunk(chunk, level, prefix) {
    if (!this.link.send(protocol.get(chunk, level, prefix))) return false;
    this.requests.push({ chunk, level, sentS: this.clock() });
    return true;
  }

  ack(chunk, level) {
    this.link.send(protocol.ack(chunk, level));
  }

  sendStats(fields) {
    return this.link.send(protocol.stats(fields));
  }

  /** Switches channel on the same connection (the server answers with a new manifest). */
  switchChannel(channel) {
    this.channel = channel;
    this.requests = [];
    this.link.send(protocol.hello(channel, this.abr, this.userAgent));
  }

  setAbr(name) {
    this.abr = name;
  }

  destroy() {
    super.destroy();
    this.requests = [];
  }

  handleOpen() {
    this.requests = [];
    this.link.send(protocol.hello(this.channel, this.abr, this.userAgent));
    this.bus.trigger(Events.SERVER_CONNECTED, { url: this.url });
  }

  handleText(text) {
    const message = this.decodeOrReport(() => protocol.decodeControl(text));
    if (message === null) return;
    if (message.type === 'manifest') {
      if (message.channel !== this.channel) return; // an answer to a hello we no longer mean
      this.link.markHealthy();
      this.bus.trigger(Events.MANIFEST_LOADED, { channel: message.channel, manifest: message.manifest });
    } else if (message.type === 'error') {
      if (Number.isInteger(message.chunk)) this.#takeRequest(message.chunk, message.level);
      this.bus.trigger(Events.SERVER_ERROR, {
        code: String(message.code),
        message: String(message.message),
        chunk: message.chunk,
        level: message.level,
      });
    }
  }

  handleBinary(buffer) {
    const frame = this.decodeOrReport(() => {
      const decoded = protocol.decodeBinary(buffer, protocol.MAX_CHUNK_PAYLOAD_BYTES);
      if (decoded.header.type === 'chunk') protocol.checkChunkHeader(decoded.header, decoded.payload.length);
      return decoded;
    });
    if (frame === null) return;
    const { header, payload } = frame;
    if (header.type === 'init_state') {
      if (header.channel !== this.channel) return;
      this.bus.trigger(Events.INIT_STATE_LOADED, { channel: header.channel, data: payload.slice() });
    } else if (header.type === 'chunk') {
      const request = this.#takeRequest(header.chunk, header.level);
      const endS = this.clock();
      this.bus.trigger(Events.CHUNK_LOADED, {
        chunk: header.chunk,
        level: header.level,
        bytes: payload.length,
        prefixBytes: header.prefix_bytes,
        closed: protocol.isClosedChunk(payload.subarray(header.prefix_bytes)),
        seconds: request === null ? 0 : endS - request.sentS,
        endS,
        frame: buffer, // forwarded to the daemon unchanged
      });
    }
  }

  #takeRequest(chunk, level) {
    const index = this.requests.findIndex((r) => r.chunk === chunk && r.level === level);
    if (index < 0) return null;
    // Answers come in order: anything older than this one was answered or dropped.
    return this.requests.splice(0, index + 1)[index];
  }

  handleClose(info) {
    this.requests = [];
    this.bus.trigger(Events.SERVER_CLOSED, { url: this.url, ...info });
  }
}
