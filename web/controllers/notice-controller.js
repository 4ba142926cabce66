/**
 * Turns link and stream events into the on-page messages a viewer can act on (NOTICE
 * events, one per `kind`; text null clears it): daemon missing, origin refused, generator
 * missing (with the fix that works for the channel's kind of generator id), a daemon slower
 * than real time, server unreachable, unknown channel.
 */
import { daemonKeepsUp } from '../abr/context.js';
import { Events } from '../events.js';
import { ErrorCode } from '../protocol.js';

export const DAEMON_COMMAND = 'promptus daemon';
export const SPEED_CHECK_MS = 1000; // how often the daemon's speed is compared with the stream's
const WEIGHTS_HASH = /^[0-9a-f]+$/; // the part after "<family>:" of an id made from weights
/**
 * The weight files `promptus daemon --generator NAME` needs, by generator name (the family
 * before an id's ":"); the other generators' weights ship with the project. The same table as
 * engines/variants.py's needs_weights / needs_taesd (tests/promptus/test_daemon_command.py
 * keeps them equal).
 */
export const DAEMON_WEIGHT_OPTIONS = Object.freeze({
  tiny: '',
  'tiny-taesd': ' --taesd DIR',
  'sd-turbo': ' --weights PATH --taesd DIR',
  nano: '',
});

/** The command that starts a daemon of the generator `generatorId` names (its family). */
export function daemonCommand(generatorId) {
  const family = generatorId.split(':')[0];
  return `${DAEMON_COMMAND} --generator ${family}${DAEMON_WEIGHT_OPTIONS[family] ?? ''}`;
}

/**
 * The daemon's pace against the stream's, in one sentence (the notice, the generator note and
 * the stats panel say the same): null before the daemon's speed is known.
 * @param {DaemonSpeed|null} speed
 */
export function paceText(speed) {
  if (speed === null || speed.daemonFps === null) return null;
  const device = speed.device ? ` on ${speed.device}` : '';
  const pace = daemonKeepsUp({ daemonFps: speed.daemonFps, fps: speed.fps })
    ? `, fast enough for real time: this stream plays ${speed.fps} frames/s`
    : `, slower than real time: this stream plays ${speed.fps} frames/s`;
  return `The daemon generates ${speed.daemonFps.toFixed(1)} frames/s${device}${pace}`;
}

/**
 * Whether a generator id names actual weights (`<family>:<hex hash>`, docs/architecture.md)
 * or is a placeholder no daemon has, like the one `promptus import-legacy` records when it
 * cannot know the weights.
 */
export function namesWeights(generatorId) {
  const [family, hash] = generatorId.split(':');
  return Boolean(family) && hash !== undefined && WEIGHTS_HASH.test(hash);
}

/**
 * @typedef {object} DaemonSpeed   what the player knows about the daemon's pace (Player.daemonSpeed)
 * @property {number|null} daemonFps        frames/s: measured from its segments, else what it reports (null: neither yet)
 * @property {number} fps                   the stream's frame rate
 * @property {number} chunkFrames
 * @property {string|null} device           the daemon's device (cpu, cuda:0, ...)
 * @property {number|null} firstChunkWaitS  seconds the first chunk has been at the daemon without a segment
 */

export class NoticeController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{pageOrigin: string, speed?: () => DaemonSpeed|null}} config
   */
  constructor(bus, { pageOrigin, speed = () => null }) {
    this.bus = bus;
    this.pageOrigin = pageOrigin;
    this.speed = speed;
    this.timer = null;
    this.generator = null; // {id, name} of the channel (its manifest)
    this.daemonGeneratorId = null; // from the daemon's status
    this.mismatch = false; // the daemon refused the channel's generator (until it accepts a stream)
    this.daemonClosed = null; // the last DAEMON_CLOSED while the daemon is away (its notice names the channel's generator)
    this.slow = false; // the 'speed' notice is up
    this.stalled = false;
    this.handlers = {
      [Events.DAEMON_CLOSED]: (p) => this.onDaemonClosed(p),
      [Events.DAEMON_CONNECTED]: () => {
        this.daemonClosed = null;
        this.notice('daemon', null);
      },
      [Events.DAEMON_INIT]: () => this.clearMismatch(),
      [Events.DAEMON_ERROR]: (p) => this.onDaemonError(p),
      [Events.DAEMON_STATUS]: (p) => this.onDaemonStatus(p),
      [Events.SERVER_CLOSED]: (p) => this.onServerClosed(p),
      [Events.MANIFEST_LOADED]: ({ manifest }) => {
        this.notice('server', null);
        this.notice('channel', null);
        if (this.generator?.id !== manifest.generator?.id) this.clearMismatch();
        this.generator = manifest.generator ?? null;
        if (this.daemonClosed !== null) this.onDaemonClosed(this.daemonClosed); // now with its generator
      },
      [Events.SERVER_ERROR]: (p) => this.onServerError(p),
      [Events.STALL_STARTED]: () => {
        this.stalled = true;
        this.renderStall();
      },
      [Events.STALL_ENDED]: () => {
        this.stalled = false;
        this.renderStall();
      },
      [Events.ERROR]: ({ message, fatal }) => {
        if (fatal) this.notice('playback', `Playback stopped: ${message}`);
      },
    };
  }

  /** Listens to the bus and checks the daemon's pace every second. */
  start() {
    this.bus.onEach(this.handlers);
    this.timer = setInterval(() => this.checkSpeed(), SPEED_CHECK_MS);
  }

  stop() {
    this.bus.offEach(this.handlers);
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Forget the channel's notices (a channel switch). */
  resetChannel() {
    this.clearMismatch();
    this.generator = null;
    this.slow = false;
    this.stalled = false;
    this.notice('speed', null);
    this.notice('stall', null);
  }

  notice(kind, text, level = 'error') {
    this.bus.trigger(Events.NOTICE, { kind, text, level });
  }

  /** The daemon is gone: what it refused goes with it, and the advice starts the channel's generator. */
  onDaemonClosed(closed) {
    const { url, everOpened, retryInMs, code } = closed;
    this.daemonClosed = closed;
    this.daemonGeneratorId = null;
    this.clearMismatch();
    const retry = retryInMs === null ? '' : ` Retrying in ${(retryInMs / 1000).toFixed(1)} s.`;
    const needed = this.generator;
    const command = needed !== null && namesWeights(needed.id) ? daemonCommand(needed.id) : DAEMON_COMMAND;
    if (!everOpened) {
      this.notice(
        'daemon',
        `No generation daemon answers at ${url}. Start it on this machine with \`${command}\` ` +
          `(it turns prompts into video locally).${retry}`,
      );
    } else {
      this.notice('daemon', `The generation daemon at ${url} closed the connection (code ${code}).${retry}`, 'warn');
    }
  }

  onDaemonStatus({ generatorId }) {
    const changed = generatorId !== this.daemonGeneratorId;
    this.daemonGeneratorId = generatorId;
    if (changed && this.mismatch) this.renderMismatch(); // now with the daemon's id
  }

  clearMismatch() {
    this.mismatch = false;
    this.notice('generator', null);
  }

  onDaemonError({ code, message }) {
    if (code === ErrorCode.FORBIDDEN_ORIGIN) {
      this.notice(
        'daemon',
        `The daemon refused this page's origin ${this.pageOrigin} (${message}). ` +
          `Restart it allowing this page: \`${DAEMON_COMMAND} --allow-origin ${this.pageOrigin}\`.`,
      );
    } else if (code === ErrorCode.GENERATOR_MISMATCH) {
      this.mismatch = true;
      this.renderMismatch();
    } else if (code === ErrorCode.OPEN_REQUIRED) {
      this.notice('generator', `The daemon did not accept the stream: ${message}`);
    }
  }

  /** The fix depends on the channel's id: a placeholder needs a new import, real weights a daemon that has them. */
  renderMismatch() {
    const needed = this.generator;
    const daemonId = this.daemonGeneratorId;
    const daemonRuns = daemonId === null ? '' : ` (the daemon here runs \`${daemonId}\`)`;
    if (needed !== null && !namesWeights(needed.id)) {
      const withId = daemonId ?? "YOUR-DAEMON'S-ID";
      this.notice(
        'generator',
        `This channel was imported with the placeholder generator id \`${needed.id}\`: nobody ` +
          'checked which weights its prompts were fitted on, so no daemon plays it as it is' +
          `${daemonRuns}. If they were fitted on the weights of the daemon running here, import ` +
          `them again with its id: \`promptus import-legacy FOLDER --out LADDER --generator-id ${withId}\`. ` +
          `Otherwise start a daemon with the weights they were fitted on (${needed.name}), then ` +
          'import them with that daemon\'s id (docs/prompt-format.md).',
      );
      return;
    }
    this.notice('generator', mismatchText(needed, daemonId));
  }

  /** The 'speed' notice: the daemon generates slower than the stream plays (the ABR's own rule). */
  checkSpeed() {
    const speed = this.speed();
    let text = null;
    if (speed !== null) {
      const device = speed.device ? ` on ${speed.device}` : '';
      const advice = speed.device === null || speed.device === 'cpu'
        ? `To play in real time, run the daemon on a GPU (\`${DAEMON_COMMAND} --device cuda\` with this ` +
          "channel's generator and weights), or play a channel of fewer frames a second or smaller frames."
        : 'To play in real time, use a faster backend (`--backend auto`, docs/realtime.md) or a faster GPU.';
      const consequence = 'the video stalls while it catches up, and the ABR stays on the lowest level ' +
        '(every level costs the daemon the same work per frame).';
      if (speed.daemonFps !== null && !daemonKeepsUp({ daemonFps: speed.daemonFps, fps: speed.fps })) {
        text = `${paceText(speed)}, so ${consequence} ${advice}`;
      } else if (speed.daemonFps === null && speed.firstChunkWaitS !== null) {
        // No segment yet: a chunk that takes longer than its own duration (with the margin) is slow.
        const chunkS = speed.chunkFrames / speed.fps;
        const atMostFps = speed.chunkFrames / speed.firstChunkWaitS;
        if (!daemonKeepsUp({ daemonFps: atMostFps, fps: speed.fps })) {
          text = `The daemon has been generating the first chunk (${chunkS.toFixed(2)} s of video) for ` +
            `${speed.firstChunkWaitS.toFixed(1)} s${device}: it is slower than real time (this stream plays ` +
            `${speed.fps} frames/s), so ${consequence} ${advice}`;
        }
      }
    }
    if (text === null && !this.slow) return;
    this.slow = text !== null;
    this.notice('speed', text, 'warn');
    this.renderStall();
  }

  renderStall() {
    const why = this.slow ? ': the daemon generates it slower than real time (see above)' : '...';
    this.notice('stall', this.stalled ? `Waiting for video (stalled)${why}` : null, 'info');
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
    this.stop();
  }
}

/**
 * One sentence for a channel whose generator the daemon refused, with the command that starts
 * the daemon it needs. `needed`: the channel's {id, name}; `daemonId`: what the daemon runs (null:
 * not known yet).
 */
export function mismatchText(needed, daemonId) {
  const retry = 'then press Retry daemon.';
  if (needed === null) return `The daemon here does not run this channel's generator: start the one it needs, ${retry}`;
  const family = needed.id.split(':')[0];
  const runs = daemonId === null ? '' : `, the daemon here runs \`${daemonId}\``;
  if (daemonId !== null && daemonId.split(':')[0] === family) {
    // same generator, other weights: the prompts were fitted for another version of them
    const start = family in DAEMON_WEIGHT_OPTIONS && DAEMON_WEIGHT_OPTIONS[family] === ''
      ? 'fit the channel again for the weights this daemon has (`promptus ladder`)'
      : `start the daemon with the weights its prompts were fitted on (\`${daemonCommand(needed.id)}\`)`;
    return `This channel was fitted on other ${needed.name} weights (\`${needed.id}\`)${runs}: ${start}, ${retry}`;
  }
  const others = daemonId === null ? '' : ` (the daemon here runs \`${daemonId}\`)`;
  return `This channel needs generator \`${needed.id}\`${others}: start the daemon with ` +
    `\`${daemonCommand(needed.id)}\`, ${retry}`;
}
