/**
 * Serialises the operations on one SourceBuffer: an operation starts only when the previous
 * one finished (its `updateend`), as MSE requires. An operation that does not make the
 * SourceBuffer update (e.g. MediaSource.endOfStream) completes at once. A throw from
 * execute() (QuotaExceededError, InvalidStateError) goes to that operation's onError and the
 * queue moves on.
 *
 * @typedef {object} BufferOperation
 * @property {string} label                 for error messages
 * @property {() => void} execute
 * @property {() => void} [onComplete]
 * @property {(error: Error) => void} [onError]
 */
export class BufferOperationQueue {
  /** @param {SourceBuffer} sourceBuffer */
  constructor(sourceBuffer) {
    this.sourceBuffer = sourceBuffer;
    /** @type {BufferOperation[]} */
    this.queue = [];
    this.running = null;
    this.failure = null;
    // MSE fires `error` and then `updateend` for a failed append: finish on updateend only.
    this.onUpdateEnd = () => this.#finish();
    this.onError = () => {
      this.failure = new Error(`SourceBuffer error during '${this.running?.label ?? 'operation'}' (the segment could not be decoded)`);
    };
    sourceBuffer.addEventListener('updateend', this.onUpdateEnd);
    sourceBuffer.addEventListener('error', this.onError);
  }

  get length() {
    return this.queue.length + (this.running === null ? 0 : 1);
  }

  /** @param {BufferOperation} operation */
  append(operation) {
    this.queue.push(operation);
    this.#runNext();
  }

  /** Puts `operation` before everything still waiting (e.g. a retry after trimming). */
  prepend(operation) {
    this.queue.unshift(operation);
    this.#runNext();
  }

  /** Drops waiting operations (the running one still finishes). */
  clear() {
    this.queue = [];
  }

  destroy() {
    this.queue = [];
    this.running = null;
    this.sourceBuffer.removeEventListener('updateend', this.onUpdateEnd);
    this.sourceBuffer.removeEventListener('error', this.onError);
  }

  #runNext() {
    while (this.running === null && this.queue.length > 0 && !this.sourceBuffer.updating) {
      const operation = this.queue.shift();
      this.running = operation;
      try {
        operation.execute();
      } catch (error) {
        this.running = null;
        operation.onError?.(error);
        continue;
      }
      if (!this.sourceBuffer.updating) {
        // Nothing asynchronous started: done already.
        this.running = null;
        operation.onComplete?.();
      }
    }
  }

  #finish() {
    const operation = this.running;
    const error = this.failure;
    this.running = null;
    this.failure = null;
    if (operation !== null) {
      if (error === null) operation.onComplete?.();
      else operation.onError?.(error);
    }
    this.#runNext();
  }
}
