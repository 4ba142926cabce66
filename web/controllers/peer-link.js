/**
 * What the player's two links (media server, daemon) share: one reconnecting SocketLink whose
 * events go to the subclass's handleOpen/handleText/handleBinary/handleClose, and decoding that
 * turns a malformed message into a non-fatal ERROR event (tagged with the link's source).
 */
import { Events } from '../events.js';
import { SocketLink } from './socket-link.js';

export class PeerLink {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {'server'|'daemon'} source names the peer in ERROR events
   * @param {{url: string, WebSocketImpl?: typeof WebSocket}} config
   */
  constructor(bus, source, { url, WebSocketImpl }) {
    this.bus = bus;
    this.source = source;
    this.link = new SocketLink({
      url,
      WebSocketImpl,
      onOpen: () => this.handleOpen(),
      onText: (text) => this.handleText(text),
      onBinary: (buffer) => this.handleBinary(buffer),
      onClose: (info) => this.handleClose(info),
    });
  }

  get url() {
    return this.link.url;
  }

  get connected() {
    return this.link.connected;
  }

  start() {
    this.link.start();
  }

  destroy() {
    this.link.stop(1000, 'player destroyed');
  }

  /** Returns decode()'s message, or null after reporting why it is malformed. */
  decodeOrReport(decode) {
    try {
      return decode();
    } catch (error) {
      this.bus.trigger(Events.ERROR, { source: this.source, message: error.message, fatal: false, error });
      return null;
    }
  }
}
