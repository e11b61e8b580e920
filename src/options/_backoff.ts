// The delay between attempts, shared by connecting (connectBackoff) and by the sink's
// publish retries (publishBackoff).
// This module is browser compatible.

/** The longest delay between two attempts, whatever the base backoff. */
const MAX_BACKOFF_MS = 60_000;

/**
 * The delay before retry number `attempt` (1 = the first retry): `base` doubled each
 * attempt, capped at 60 s, with "equal jitter" (half fixed, half random) so that many
 * clients that lost the same broker do not come back in lockstep.
 */
export function backoffDelay(
  attempt: number,
  base: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, base * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
