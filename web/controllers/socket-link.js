/**
 * One WebSocket that reconnects with exponential backoff (0.5 s ... 8 s) until stopped.
 * The owner calls markHealthy() once the link proved useful (the backoff starts over) and
 * stop() to close it for good. Text frames go to onText, binary ones (ArrayBuffer) to onBinary.
 */
import { backoffDelayMs } from '../backoff.js';

export class SocketLink {
  /**
   * @param {{url: string, onOpen: Function, onText: Function, onBinary: Function,
   *          onClose: (info: {code: number, reason: string, everOpened: boolean, retryInMs: number|null}) => void,
   *          WebSocketImpl?: typeof WebSocket}} options
   */
  constructor({ url, onOpen, onText, onBinary, onClose, WebSocketImpl = globalThis.WebSocket }) {
    this.url = url;
    this.handlers = { onOpen, onText, onBinary, onClose };
    this.WebSocketImpl = WebSocketImpl;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.stopped = true;
  }

  get connected() {
    return this.socket !== null && this.socket.readyState === 1; // OPEN
  }

  /** Opens the socket (and keeps reopening it after a close until stop()). */
  start() {
    this.stopped = false;
    this.#connect();
  }

  /** Retries go back to the shortest delay. */
  markHealthy() {
    this.attempt = 0;
  }

  /** Sends a string or bytes; false when not connected (the message is dropped). */
  send(data) {
    if (!this.connected) return false;
    this.socket.send(data);
    return true;
  }

  /** Closes and stops reconnecting. */
  stop(code = 1000, reason = 'closed by the page') {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      if (socket.readyState <= 1) socket.close(code, reason);
    }
  }

  /** Closes now and reconnects right away (e.g. to reach a restarted peer sooner). */
  restart() {
    this.stop();
    this.attempt = 0;
    this.start();
  }

  #connect() {
    let everOpened = false;
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url);
    } catch (error) {
      // A malformed URL: no retry can fix it.
      this.stopped = true;
      this.handlers.onClose({ code: 0, reason: String(error.message ?? error), everOpened: false, retryInMs: null });
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      everOpened = true;
      this.handlers.onOpen();
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') this.handlers.onText(event.data);
      else this.handlers.onBinary(event.data);
    };
    socket.onerror = () => {}; // the close event that follows carries what we know
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      let retryInMs = null;
      if (!this.stopped) {
        retryInMs = backoffDelayMs(this.attempt);
        this.attempt += 1;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (!this.stopped) this.#connect();
        }, retryInMs);
      }
      this.handlers.onClose({ code: event.code, reason: event.reason, everOpened, retryInMs });
    };
  }
}
