/**
 * The chunks at the daemon: forwarded and not yet wholly back as segments, in the daemon's
 * order (it generates in order and answers GOP by GOP: `part` of `parts`), and the ladder chunk
 * it expects next, without which a chunk is preceded by a `seek`. Pure bookkeeping over the
 * daemon link's `seek` and `forwardChunk`; the daemon session controller owns what to do with a segment.
 */
export class DaemonQueue {
  /** @param {{seek: (chunk: number) => boolean, forwardChunk: (frame: ArrayBuffer) => boolean}} daemon */
  constructor(daemon) {
    this.daemon = daemon;
    this.clear(null);
  }

  /** Forgets every chunk at the daemon; `next` = the ladder chunk it expects next (null: unknown, send a seek). */
  clear(next) {
    this.entries = []; // [{virtual, chunk, level, partsBack, framesBack}]
    this.next = next;
  }

  /** The daemon went away: what it had is lost (what it expects next is asked again after its `init`). */
  drop() {
    this.entries = [];
  }

  get length() {
    return this.entries.length;
  }

  /** Sends ladder chunk `chunk` (after a `seek` when the daemon expects another one); false when a send failed. */
  forward({ virtual, chunk, level }, frame) {
    if (this.next !== chunk && !this.daemon.seek(chunk)) return false;
    if (!this.daemon.forwardChunk(frame)) return false;
    this.next = chunk + 1;
    this.entries.push({ virtual, chunk, level, partsBack: 0, framesBack: 0 });
    return true;
  }

  /**
   * One segment back: {entry, complete} (complete with the chunk's last GOP, which leaves the
   * queue), or null for a segment from before a seek or resync. Entries before the one it
   * belongs to were dropped by the daemon.
   */
  segment({ chunk, level, part, parts, frames }) {
    const index = this.entries.findIndex((entry) => entry.chunk === chunk && entry.level === level);
    if (index < 0) return null;
    this.entries.splice(0, index);
    const entry = this.entries[0];
    if (part !== entry.partsBack) return null; // not the next GOP of this chunk (cannot happen in order)
    entry.partsBack += 1;
    entry.framesBack += frames;
    const complete = part === parts - 1;
    if (complete) this.entries.shift();
    return { entry, complete };
  }

  /** Seconds of video at the daemon not yet back as segments (a chunk's GOPs come back one by one). */
  pendingS(chunkDurationS, fps) {
    return this.entries.reduce((sum, entry) => sum + Math.max(0, chunkDurationS - entry.framesBack / fps), 0);
  }
}
