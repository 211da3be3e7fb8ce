/**
 * A guard against a known crash of `npm:postgres` 3.4.x (porsager/postgres issues #1066, #1154, #1208, open
 * fixes #1168, #1209; still in 3.4.10): a small write is scheduled with `setImmediate`, the connection closes
 * before it runs (the server ended it, the network dropped it), and the scheduled `nextWrite` calls
 * `socket.write` on `null`. The `TypeError` is thrown from the immediate's callback, outside any query, so no
 * `await` can catch it: it would end the whole server — exactly when the database goes away, which the
 * server must outlive (issue 10).
 *
 * The guard takes that one error, recognised by its message and by a stack inside the driver's
 * `connection.js`, off the process's uncaught errors; any other error is left alone. The write it belonged to
 * is lost with its connection; the query waiting for it fails at the store's request deadline
 * (`QUERY_TIMEOUT_MS`) with `UNAVAILABLE`, and the pool is replaced, as after any connection failure.
 *
 * @module
 */

let installed = false;
let guarded = 0;

/**
 * Whether an error is the driver's write on a closed socket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isClosedSocketWrite } from "./_postgres_write_guard.ts";
 * const err = new TypeError("Cannot read properties of null (reading 'write')");
 * err.stack = `${err.message}\n    at nextWrite (file:///cache/npm/registry.npmjs.org/postgres/3.4.9/src/connection.js:255:22)`;
 * assert(isClosedSocketWrite(err));
 * assert(!isClosedSocketWrite(new TypeError("Cannot read properties of null (reading 'write')")));
 * ```
 *
 * @param err What was thrown.
 * @returns `true` only for that error of that driver.
 */
export function isClosedSocketWrite(err: unknown): boolean {
  return err instanceof TypeError &&
    /Cannot read properties of null \(reading 'write'\)|null is not an object \(evaluating 'socket\.write'\)/
      .test(err.message) &&
    /\bnextWrite\b[^\n]*postgres[\\/][^\n]*connection\.js/.test(err.stack ?? "");
}

/** How many such errors the guard has taken (for tests and logs). */
export function guardedWrites(): number {
  return guarded;
}

/** Install the guard, once per process (every PostgreSQL store does; the first installs it). */
export function installPostgresWriteGuard(): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("error", (event) => {
    if (!isClosedSocketWrite(event.error)) return;
    guarded++;
    event.preventDefault();
  });
}
