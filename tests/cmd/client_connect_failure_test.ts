import assert from "node:assert/strict";
import { connectFailure } from "../../cmd/client.ts";
import { eventText } from "../../lib/client/client_event.ts";
import { TrustError } from "../../lib/client/known_hosts.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

const ENDPOINT = { host: "127.0.0.1", port: 1992, tls: true };

Deno.test("connectFailure keeps a refusal's code once: in the error, not again in its message", () => {
  const { error, status } = connectFailure(
    new ProtocolError("UNSUPPORTED_VERSION", "Version 1 is not supported"),
    ENDPOINT,
  );
  assert.equal(status, 3);
  assert.ok(error instanceof ProtocolError);
  assert.equal(error.code, "UNSUPPORTED_VERSION");
  assert.equal(error.message, "Cannot connect to 127.0.0.1:1992: Version 1 is not supported");
  const printed = eventText({
    type: "reply",
    ok: false,
    command: "hello",
    error: { code: error.code, message: error.message },
  });
  assert.deepEqual(printed.lines, [
    "error: Cannot connect to 127.0.0.1:1992: Version 1 is not supported (UNSUPPORTED_VERSION)",
  ]);
});

Deno.test("connectFailure gives status 4 to an untrusted key and 3 to the rest", () => {
  assert.equal(connectFailure(new TrustError("changed"), ENDPOINT).status, 4);
  const refused = connectFailure(new Deno.errors.ConnectionRefused("Connection refused"), ENDPOINT);
  assert.equal(refused.status, 3);
  assert.match(refused.error.message, /^Cannot connect to 127\.0\.0\.1:1992: nothing is listening there/);
});
