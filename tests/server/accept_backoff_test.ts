import assert from "node:assert/strict";
import {
  ACCEPT_BACKOFF_FIRST_MS,
  ACCEPT_BACKOFF_MAX_MS,
  AcceptBackoff,
} from "../../lib/server/_accept_backoff.ts";

Deno.test("AcceptBackoff doubles the pause from a few ms to about a second, and a success resets it", () => {
  const backoff = new AcceptBackoff();
  const pauses = Array.from({ length: 12 }, () => backoff.failed());
  assert.deepEqual(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]);
  assert.equal(pauses[0], ACCEPT_BACKOFF_FIRST_MS);
  assert.equal(pauses.at(-1), ACCEPT_BACKOFF_MAX_MS);
  backoff.succeeded();
  assert.equal(backoff.failed(), ACCEPT_BACKOFF_FIRST_MS);
});
