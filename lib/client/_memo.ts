/**
 * Small bounded caches of what a client works out once and reuses: an imported sealing key or a channel
 * binding per server key or certificate, an opened identity key per backup, a prepared user name. Past their
 * bound the oldest entry goes.
 *
 * @module
 */

/**
 * Keep `value` under `key`, dropping the oldest entry past `max`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { remember } from "./_memo.ts";
 * const cache = new Map<string, number>();
 * remember(cache, "a", 1, 1);
 * assert(remember(cache, "b", 2, 1) === 2 && !cache.has("a"));
 * ```
 *
 * @param cache The cache.
 * @param key The key.
 * @param value The value.
 * @param max Most entries kept.
 * @returns The value.
 */
export function remember<K, V>(cache: Map<K, V>, key: K, value: V, max: number): V {
  cache.set(key, value);
  if (cache.size > max) cache.delete(cache.keys().next().value!);
  return value;
}

/**
 * The cached promise for `key`, or a new one from `make`. A failed promise is forgotten, so the next call
 * tries again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { memo } from "./_memo.ts";
 * const cache = new Map<string, Promise<number>>();
 * let made = 0;
 * await memo(cache, "a", () => Promise.resolve(++made));
 * assert((await memo(cache, "a", () => Promise.resolve(++made))) === 1);
 * ```
 *
 * @param cache The cache.
 * @param key The key.
 * @param make Makes the value when it is not cached.
 * @param max Most entries kept (default 64).
 * @returns The promised value.
 */
export function memo<T>(
  cache: Map<string, Promise<T>>,
  key: string,
  make: () => Promise<T>,
  max = 64,
): Promise<T> {
  let value = cache.get(key);
  if (!value) {
    const made = make();
    made.catch(() => {
      if (cache.get(key) === made) cache.delete(key);
    });
    value = remember(cache, key, made, max);
  }
  return value;
}
