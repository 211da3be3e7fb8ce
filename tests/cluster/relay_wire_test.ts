import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeEndpoint,
  decodeForward,
  decodeSlotClaim,
  encodeEndpoint,
  encodeForward,
  encodeSlotClaim,
  newClaim,
  parseSlot,
} from "../../lib/cluster/_relay_wire.ts";

const encoder = new TextEncoder();
const claimArb = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("")
);

Deno.test("Relay wire: a forwarded datagram comes back as it was sent", () => {
  fc.assert(
    fc.property(
      claimArb,
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.uint8Array({ minLength: 1, maxLength: 1150 }),
      (claim, to, from, inner) => {
        assert.deepEqual(decodeForward(encodeForward({ claim, to, from, inner })), {
          claim,
          to,
          from,
          inner,
        });
      },
    ),
  );
});

Deno.test("Relay wire: anything else on the relay subject is null, never thrown", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
    const m = decodeForward(bytes);
    if (m) assert.ok(bytes[0] === 1 && bytes.length > 17);
  }));
  assert.equal(decodeForward(new Uint8Array(17).fill(1)), null, "no inner datagram");
  assert.equal(decodeForward(new Uint8Array([2, ...new Uint8Array(20)])), null, "another version");
});

Deno.test("Relay wire: slot and endpoint entries come back as written; malformed ones are null", () => {
  const claim = newClaim();
  assert.match(claim, /^[0-9a-f]{16}$/);
  assert.notEqual(newClaim(), claim);
  assert.deepEqual(decodeSlotClaim(encodeSlotClaim({ node: "n 1", claim })), { node: "n 1", claim });
  const endpoint = {
    user: "ålice",
    relayId: 2 ** 32 - 1,
    hostname: "2001:db8::1",
    port: 65535,
    since: 1.5,
    claim,
  };
  assert.deepEqual(decodeEndpoint(encodeEndpoint(endpoint)), endpoint);
  const bad = [
    "",
    "null",
    "[]",
    "\xff",
    JSON.stringify({ node: "n", claim: "xyz" }),
    JSON.stringify({ ...endpoint, relayId: 2 ** 32 }),
    JSON.stringify({ ...endpoint, port: 70000 }),
    JSON.stringify({ ...endpoint, hostname: "" }),
    JSON.stringify({ ...endpoint, since: "1" }),
    JSON.stringify({ ...endpoint, user: 5 }),
    JSON.stringify({ ...endpoint, claim: claim.toUpperCase() }),
  ];
  for (const text of bad) assert.equal(decodeEndpoint(encoder.encode(text)), null, text);
  for (const text of bad.slice(0, 5)) assert.equal(decodeSlotClaim(encoder.encode(text)), null, text);
  assert.equal(decodeEndpoint(new Uint8Array([0xc3, 0x28])), null, "not UTF-8");
});

Deno.test("Relay wire: parseSlot reads 0‥1023 written plainly, nothing else", () => {
  assert.deepEqual(["0", "7", "1023"].map(parseSlot), [0, 7, 1023]);
  for (const text of ["1024", "-1", "01", "1e2", "", " 1", "a", "9999"]) {
    assert.equal(parseSlot(text), null, text);
  }
});
