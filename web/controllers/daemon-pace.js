/**
 * The daemon's pace: its generation speed in frames per second, an EWMA over the chunks it
 * generated (the daemon session controller samples each chunk's last GOP, whose generation
 * time covers the chunk), else the fps its last `status` reports; and that status (device,
 * generator, queue depth). A daemon that closes takes both with it: the next one is measured
 * afresh; a new channel's chunks too. The ABR context, the notices (through
 * Player.daemonSpeed) and the stats panel read it.
 */
import { Events } from '../events.js';
import { Ewma } from '../abr/ewma.js';

export const DAEMON_FPS_HALF_LIFE_S = 4; // seconds of generation

export class DaemonPace {
  /** @param {import('../events.js').EventBus} bus */
  constructor(bus) {
    this.bus = bus;
    this.handlers = {
      [Events.DAEMON_STATUS]: (status) => this.onDaemonStatus(status),
      [Events.DAEMON_CLOSED]: () => this.onDaemonClosed(),
    };
    this.reported = null; // the daemon's last `status` (device, fps, queue depth, generator id)
    this.reset();
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** A new channel: its chunks are measured afresh (the daemon's status stays). */
  reset() {
    this.measured = new Ewma(DAEMON_FPS_HALF_LIFE_S);
  }

  onDaemonStatus(status) {
    this.reported = status;
  }

  onDaemonClosed() {
    this.reported = null;
    this.reset(); // the next daemon is measured afresh
  }

  /** One chunk generated: `frames` in `generationMs` (nothing learnt from 0 ms). */
  sample(generationMs, frames) {
    if (generationMs > 0) this.measured.sample(generationMs / 1000, frames / (generationMs / 1000));
  }

  /** Frames per second: measured from chunks, else what the daemon reports, else null. */
  get fps() {
    if (this.measured.totalWeight > 0) return this.measured.getEstimate();
    if (this.reported !== null && this.reported.fps > 0) return this.reported.fps;
    return null;
  }

  /** Read-only: the pace and what the daemon last said about itself. */
  status() {
    return {
      fps: this.fps,
      device: this.reported?.device ?? null,
      generatorId: this.reported?.generatorId ?? null,
      queueDepth: this.reported?.queueDepth ?? null,
    };
  }

  destroy() {
    this.unregisterListeners();
  }
}
