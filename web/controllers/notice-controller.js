/**
 * Turns link and stream events into the on-page messages a viewer can act on (NOTICE
 * events, one per `kind`; text null clears it): daemon missing, origin refused, generator
 * missing, server unreachable, unknown channel.
 */
import { Events } from '../events.js';
import { ErrorCode } from '../protocol.js';

export const DAEMON_COMMAND = 'promptus daemon';

export class NoticeController {
  /** @param {import('../events.js').EventBus} bus @param {{pageOrigin: string}} config */
  constructor(bus, { pageOrigin }) {
    this.bus = bus;
    this.pageOrigin = pageOrigin;
    this.handlers = {
      [Events.DAEMON_CLOSED]: (p) => this.onDaemonClosed(p),
      [Events.DAEMON_CONNECTED]: () => this.notice('daemon', null),
      [Events.DAEMON_INIT]: () => this.notice('generator', null),
      [Events.DAEMON_ERROR]: (p) => this.onDaemonError(p),
      [Events.SERVER_CLOSED]: (p) => this.onServerClosed(p),
      [Events.MANIFEST_LOADED]: () => {
        this.notice('server', null);
        this.notice('channel', null);
      },
      [Events.SERVER_ERROR]: (p) => this.onServerError(p),
      [Events.STALL_STARTED]: () => this.notice('stall', 'Waiting for video (stalled)...', 'info'),
      [Events.STALL_ENDED]: () => this.notice('stall', null),
      [Events.ERROR]: ({ message, fatal }) => {
        if (fatal) this.notice('playback', `Playback stopped: ${message}`);
      },
    };
  }

  registerListeners() {
    for (const [event, handler] of Object.entries(this.handlers)) this.bus.on(event, handler);
  }

  unregisterListeners() {
    for (const [event, handler] of Object.entries(this.handlers)) this.bus.off(event, handler);
  }

  notice(kind, text, level = 'error') {
    this.bus.trigger(Events.NOTICE, { kind, text, level });
  }

  onDaemonClosed({ url, everOpened, retryInMs, code }) {
    const retry = retryInMs === null ? '' : ` Retrying in ${(retryInMs / 1000).toFixed(1)} s.`;
    if (!everOpened) {
      this.notice(
        'daemon',
        `No generation daemon answers at ${url}. Start it on this machine with \`${DAEMON_COMMAND}\` ` +
          `(it turns prompts into video locally).${retry}`,
      );
    } else {
      this.notice('daemon', `The generation daemon at ${url} closed the connection (code ${code}).${retry}`, 'warn');
    }
  }

  onDaemonError({ code, message }) {
    if (code === ErrorCode.FORBIDDEN_ORIGIN) {
      this.notice(
        'daemon',
        `The daemon refused this page's origin ${this.pageOrigin} (${message}). ` +
          `Restart it allowing this page: \`${DAEMON_COMMAND} --allow-origin ${this.pageOrigin}\`.`,
      );
    } else if (code === ErrorCode.GENERATOR_MISMATCH) {
      this.notice(
        'generator',
        `The daemon does not have the generator this channel was made for: ${message}. ` +
          'Prompts only mean something for the exact weights they were fitted on; start the daemon ' +
          'with those weights (see the README), then press Retry.',
      );
    } else if (code === ErrorCode.OPEN_REQUIRED) {
      this.notice('generator', `The daemon did not accept the stream: ${message}`);
    }
  }

  onServerClosed({ url, retryInMs, everOpened }) {
    const retry = retryInMs === null ? '' : ` Reconnecting in ${(retryInMs / 1000).toFixed(1)} s.`;
    const what = everOpened ? 'Lost the connection to the media server' : 'Cannot reach the media server';
    this.notice('server', `${what} at ${url}.${retry}`, everOpened ? 'warn' : 'error');
  }

  onServerError({ code, message }) {
    if (code === ErrorCode.UNKNOWN_CHANNEL) this.notice('channel', `Unknown channel: ${message}`);
    else if (code === ErrorCode.SERVER_FULL) this.notice('server', `The media server is full: ${message}`);
  }

  destroy() {
    this.unregisterListeners();
  }
}
