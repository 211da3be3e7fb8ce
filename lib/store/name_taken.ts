/**
 * The refusals of a new account's name: taken (the same key, in any case), or
 * looking like a name that is (the same look-alike key, UTS #39). Both are
 * `USER_EXISTS`; a look-alike carries `reason: "confusable"` and never names
 * the account it resembles, so it tells an asker no more than asking for the
 * resembled name itself would.
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";

/**
 * The refusal of a name another account has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameTaken } from "./name_taken.ts";
 * assert(nameTaken("alice").message === "User already exists: alice");
 * ```
 *
 * @param name The name asked for.
 * @returns `USER_EXISTS`.
 */
export function nameTaken(name: string): ProtocolError {
  return new ProtocolError("USER_EXISTS", `User already exists: ${name}`);
}

/**
 * The refusal of a name that looks like another account's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameLooksTaken } from "./name_taken.ts";
 * assert(nameLooksTaken("\u0430lice").details.reason === "confusable");
 * ```
 *
 * @param name The name asked for.
 * @returns `USER_EXISTS` with `reason: "confusable"`.
 */
export function nameLooksTaken(name: string): ProtocolError {
  return new ProtocolError(
    "USER_EXISTS",
    `User name looks like an existing account's: ${name}`,
    { reason: "confusable" },
  );
}
