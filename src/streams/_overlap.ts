// Overlapping filters: one delivery per published message, however many of a source's
// filters match it.
//
// MQTT 5 §3.3.4 lets a broker send a client one copy of a message per matching subscription
// (mosquitto 2.0 does over MQTT 5; over 3.1.1 with allow_duplicate_messages, the default of
// mosquitto 2.1), each its own PUBLISH with its own packet id, at its own subscription's
// granted QoS. Which copy reaches the reader is decided from the topic and the filters
// alone, never by arrival order (the copies' order is the broker's): of the matching
// subscriptions, the one granted the highest QoS, ties to the lowest identifier, so the
// copy delivered carries the strongest guarantee the broker gave. The other copies are
// acknowledged unread and counted (`stats.duplicates`).
//
// - MQTT 5, with Subscription Identifiers (§3.8.2.1.2): each filter is its own SUBSCRIBE
//   with identifier = its index + 1; a copy names the subscription(s) it came through. A
//   single copy for several subscriptions carries all their identifiers (§3.3.4), and is
//   delivered once.
// - MQTT 3.1.1 (or a broker without identifiers): only the filters no other one covers are
//   subscribed (`a/#` covers `a/+` and `a/b`). A partial overlap (`a/+/c` and `a/b/+`) cannot
//   be told apart from two publishes: such a message is delivered as it comes and counted in
//   `stats.overlapping`.
//
// Shared subscriptions (`$share/group/filter`, §4.8.2) stay out of it: the broker hands
// each message of one to a single member of the group, maybe another process, so a copy
// that came through one is always delivered, and one is never dropped in favour of it.

/** How a source subscribes its filters, and which copies it delivers. */
export interface SubscriptionPlan {
  /** The SUBSCRIBEs to send: a filter, with its Subscription Identifier over MQTT 5. */
  readonly subscriptions: readonly { readonly filter: string; readonly id?: number }[];
  /**
   * Whether a message on `topic`, carrying `ids` (its Subscription Identifiers), is a copy
   * to acknowledge unread rather than deliver.
   */
  isCopy(topic: string, ids: number | readonly number[] | undefined): boolean;
  /** Whether a message on `topic` may come once per matching filter (MQTT 3.1.1 partial overlap). */
  mayRepeat(topic: string): boolean;
  /** Records the QoS the broker granted each subscription, in their order (from the SUBACK). */
  granted(qos: readonly number[]): void;
}

/** A plan that does nothing per message: the filters cannot overlap. */
class Disjoint implements SubscriptionPlan {
  readonly subscriptions;
  constructor(filters: readonly string[]) {
    this.subscriptions = filters.map((filter) => ({ filter }));
  }
  isCopy(): boolean {
    return false;
  }
  mayRepeat(): boolean {
    return false;
  }
  granted(): void {}
}

/** MQTT 5 with Subscription Identifiers: exactly one copy of each message is delivered. */
class ByIdentifier implements SubscriptionPlan {
  readonly subscriptions;
  /** Granted QoS by identifier; the requested QoS until the SUBACK says. */
  #qos: number[];
  readonly #filters: readonly string[];
  readonly #shared: boolean[];

  constructor(filters: readonly string[], qos: number) {
    this.#filters = filters;
    this.subscriptions = filters.map((filter, i) => ({ filter, id: i + 1 }));
    this.#qos = filters.map(() => qos);
    this.#shared = filters.map(isShared);
  }

  isCopy(topic: string, ids: number | readonly number[] | undefined): boolean {
    if (ids === undefined) return false; // nothing to judge by: deliver it
    const list = typeof ids === "number" ? [ids] : ids;
    // A copy that came through a shared subscription is this member's share: keep it.
    if (list.some((id) => this.#shared[id - 1])) return false;
    const chosen = this.#chosen(topic);
    return chosen !== undefined && !list.includes(chosen);
  }

  mayRepeat(): boolean {
    return false;
  }

  granted(qos: readonly number[]): void {
    this.#qos = [...qos];
  }

  /** The identifier of the subscription whose copy of a message on `topic` is delivered. */
  #chosen(topic: string): number | undefined {
    let best: number | undefined;
    for (let i = 0; i < this.#filters.length; i++) {
      if (this.#shared[i] || !matches(this.#filters[i], topic)) continue;
      if (best === undefined || this.#qos[i] > this.#qos[best]) best = i;
    }
    return best === undefined ? undefined : best + 1;
  }
}

/** MQTT 3.1.1: the covering filters only; what partial overlaps repeat is counted. */
class Covering implements SubscriptionPlan {
  readonly subscriptions;
  /** The unshared filters subscribed, when some of them can match one topic. */
  readonly #overlapping: readonly string[];

  constructor(filters: readonly string[]) {
    const kept = coveringSet(filters);
    this.subscriptions = kept.map((filter) => ({ filter }));
    const unshared = kept.filter((filter) => !isShared(filter));
    this.#overlapping = overlap(unshared) ? unshared : [];
  }

  isCopy(): boolean {
    return false;
  }

  mayRepeat(topic: string): boolean {
    if (this.#overlapping.length === 0) return false;
    let count = 0;
    for (const filter of this.#overlapping) {
      if (matches(filter, topic) && ++count > 1) return true;
    }
    return false;
  }

  granted(): void {}
}

/**
 * How to subscribe to `filters` at `qos`, and which copies to deliver: by Subscription
 * Identifier when the broker takes them (MQTT 5), else by the covering set.
 *
 * @param identifiers Whether the connection can use Subscription Identifiers: MQTT 5, and
 * the broker's CONNACK did not say Subscription Identifiers Available = 0 (§3.2.2.3.12).
 */
export function subscriptionPlan(
  filters: readonly string[],
  qos: number,
  identifiers: boolean,
): SubscriptionPlan {
  const unique = [...new Set(filters)];
  if (!overlap(unique.filter((filter) => !isShared(filter)))) return new Disjoint(unique);
  return identifiers ? new ByIdentifier(unique, qos) : new Covering(unique);
}

/** Whether some topic name matches two of `filters`. */
function overlap(filters: readonly string[]): boolean {
  return filters.some((a, i) => filters.some((b, j) => i < j && intersect(a, b)));
}

/**
 * The filters of `filters` that `topic` matches, in their order; a shared subscription by
 * the filter after its group.
 */
export function matchingFilters(filters: readonly string[], topic: string): string[] {
  return filters.filter((filter) =>
    matches(isShared(filter) ? filter.slice(filter.indexOf("/", 7) + 1) : filter, topic)
  );
}

/** Whether `filter` is a shared subscription, `$share/{group}/{filter}`. */
function isShared(filter: string): boolean {
  return filter.startsWith("$share/");
}

/**
 * Whether the topic name `topic` matches `filter` (MQTT 5 §4.7): `+` one level, `#` the
 * rest (the parent level included), and a wildcard first level never matches a topic
 * starting with `$` (§4.7.2).
 */
export function matches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter[0] === "+" || filter[0] === "#")) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether every topic `narrow` matches is matched by `wide` as well. */
export function covers(wide: string, narrow: string): boolean {
  if (isShared(wide) || isShared(narrow)) return wide === narrow;
  const w = wide.split("/");
  const n = narrow.split("/");
  // `+` or `#` first never matches a `$` topic: it cannot cover a filter that does.
  if (narrow.startsWith("$") && (w[0] === "+" || w[0] === "#")) return false;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === "#") return true;
    if (i >= n.length) return false;
    if (n[i] === "#") return false;
    if (w[i] !== "+" && w[i] !== n[i]) return false;
  }
  return w.length === n.length;
}

/** Whether some topic name matches both filters. */
export function intersect(a: string, b: string): boolean {
  const x = a.split("/");
  const y = b.split("/");
  // A `$` topic is matched only by a filter whose first level is that literal.
  const dollar = (l: string) => l.startsWith("$");
  const wild = (l: string) => l === "+" || l === "#";
  if ((dollar(x[0]) && wild(y[0])) || (dollar(y[0]) && wild(x[0]))) return false;
  for (let i = 0;; i++) {
    if (x[i] === "#" || y[i] === "#") return true;
    if (i >= x.length || i >= y.length) return x.length === y.length;
    if (x[i] !== "+" && y[i] !== "+" && x[i] !== y[i]) return false;
  }
}

/** The filters no other one covers, in their order (of equal filters, the first). */
export function coveringSet(filters: readonly string[]): string[] {
  return filters.filter((filter, i) =>
    !filters.some((other, j) =>
      j !== i && covers(other, filter) && (!covers(filter, other) || j < i)
    )
  );
}
