/** Reconnect delays: exponential backoff from 0.5 s, capped at 8 s (pure, so testable). */

export const BACKOFF_FIRST_MS = 500; // ms before the first retry
export const BACKOFF_MAX_MS = 8000; // ms, longest wait between retries

/** Delay before retry number `attempt` (0 = first retry). */
export function backoffDelayMs(attempt, firstMs = BACKOFF_FIRST_MS, maxMs = BACKOFF_MAX_MS) {
  return Math.min(maxMs, firstMs * Math.pow(2, Math.max(0, attempt)));
}
