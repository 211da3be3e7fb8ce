/**
 * A small cache of promised values by key, for what a client works out once per server key or certificate
 * (an imported sealing key, a channel binding). A failed promise is forgotten, so the next call tries again;
 * past `max` entries the cache starts over.
 *
 * @module
 */

/**
 * The cached promise for `key`, or a new one from `make`.
 *
 * @example
 * ```ts
 * import { memo } from "./_memo.ts";
 * const cache = new Map<string, Promise<number>>();
 * let made = 0;
 * await memo(cache, "a", () => Promise.resolve(++made));
 * console.assert((await memo(cache, "a", () => Promise.resolve(++made))) === 1);
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
    value = make();
    value.catch(() => cache.delete(key));
    if (cache.size >= max) cache.clear();
    cache.set(key, value);
  }
  return value;
}
