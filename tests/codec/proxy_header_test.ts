import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeProxyV2,
  MAX_PROXY_V2_BODY,
  parseProxyV2,
  PROXY_V2_PREFIX_LENGTH,
  proxyV2BodyLength,
} from "../../lib/codec/proxy_header.ts";

/** The signature, written out here rather than taken from the code under test. */
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A header built by hand: signature, version/command, family/transport, u16 length, body. */
function header(versionCommand: number, familyTransport: number, body: number[], length = body.length) {
  return new Uint8Array([...SIGNATURE, versionCommand, familyTransport, length >> 8, length & 0xff, ...body]);
}

Deno.test("parseProxyV2 reads the client of a TCP over IPv4 header as HAProxy sends it", () => {
  // 192.168.0.1:56324 -> 192.168.0.11:443
  const bytes = header(0x21, 0x11, [192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb]);
  assert.equal(proxyV2BodyLength(bytes.subarray(0, PROXY_V2_PREFIX_LENGTH)), 12);
  assert.deepEqual(parseProxyV2(bytes), { address: "192.168.0.1", port: 56324 });
  assert.deepEqual(
    encodeProxyV2({ address: "192.168.0.1", port: 56324 }, { address: "192.168.0.11", port: 443 }),
    bytes,
  );
});

Deno.test("parseProxyV2 writes an IPv6 client as RFC 5952 does, and an IPv4-mapped one as IPv4", () => {
  const v6 = (groups: number[]) => groups.flatMap((g) => [g >> 8, g & 0xff]);
  const body = [
    ...v6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]),
    ...v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11]),
    0,
    80,
    0,
    81,
  ];
  assert.deepEqual(parseProxyV2(header(0x21, 0x21, body)), { address: "2001:db8::1:0:0:1", port: 80 });
  const mapped = [
    ...v6([0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7107]),
    ...v6([0, 0, 0, 0, 0, 0, 0, 1]),
    0,
    1,
    0,
    2,
  ];
  assert.deepEqual(parseProxyV2(header(0x21, 0x21, mapped)), { address: "203.0.113.7", port: 1 });
});

Deno.test("parseProxyV2 names no client for LOCAL, an unspecified family or a Unix socket, and skips TLVs", () => {
  assert.equal(parseProxyV2(header(0x20, 0x00, [])), null, "LOCAL: a health check of the balancer's own");
  assert.equal(
    parseProxyV2(header(0x20, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2])),
    null,
    "LOCAL ignores addresses",
  );
  assert.equal(parseProxyV2(header(0x21, 0x00, [])), null);
  assert.equal(parseProxyV2(header(0x21, 0x31, new Array(216).fill(0x41))), null);
  // A TLV (type 0x04 NOOP, length 3) after the addresses.
  const withTlv = header(0x21, 0x11, [10, 0, 0, 7, 10, 0, 0, 11, 0, 9, 7, 199, 0x04, 0, 3, 0, 0, 0]);
  assert.deepEqual(parseProxyV2(withTlv), { address: "10.0.0.7", port: 9 });
});

Deno.test("proxyV2BodyLength refuses what is no version 2 header, before reading its body", () => {
  const refused = (bytes: Uint8Array, message: RegExp) =>
    assert.throws(
      () => proxyV2BodyLength(bytes),
      (err: unknown) => err instanceof TypeError && message.test(err.message),
    );
  refused(new TextEncoder().encode("PROXY TCP4 1.2.3"), /bad signature/);
  refused(new TextEncoder().encode('\x00\x00\x00\x10{"op":"HELLO","v'), /bad signature/);
  refused(header(0x21, 0x11, []).subarray(0, 15), /too short: 15 bytes/);
  refused(header(0x11, 0x11, [], 12), /Unsupported PROXY protocol version: 1/);
  refused(header(0x22, 0x11, [], 12), /Unknown PROXY command: 2/);
  refused(header(0x21, 0x41, [], 12), /Unknown PROXY address family or transport: 0x41/);
  refused(header(0x21, 0x13, [], 12), /Unknown PROXY address family or transport: 0x13/);
  refused(header(0x21, 0x11, [], MAX_PROXY_V2_BODY + 1), /too long: 1025 bytes/);
  refused(header(0x21, 0x11, [], 11), /too short for its addresses: 11 bytes, 12 needed/);
  refused(header(0x21, 0x21, [], 35), /36 needed/);
  assert.equal(proxyV2BodyLength(header(0x20, 0x11, [], 0)), 0, "LOCAL needs no addresses");
  assert.throws(
    () => parseProxyV2(header(0x21, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2], 13)),
    /length mismatch/,
  );
});

/** An address to send, and how the parser must write it. */
const ipv4 = fc.ipV4().map((address) => ({ address, expected: address }));
const ipv6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((groups) => {
  const address = groups.map((g) => g.toString(16)).join(":");
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  const expected = mapped
    ? [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".")
    : new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return { address, expected };
});
const port = fc.integer({ min: 0, max: 65535 });

Deno.test("encodeProxyV2 and parseProxyV2 agree on every IPv4 and IPv6 client", () => {
  fc.assert(
    fc.property(fc.oneof(fc.tuple(ipv4, ipv4), fc.tuple(ipv6, ipv6)), port, port, ([from, to], p1, p2) => {
      const parsed = parseProxyV2(
        encodeProxyV2({ address: from.address, port: p1 }, { address: to.address, port: p2 }),
      );
      assert.deepEqual(parsed, { address: from.expected, port: p1 });
    }),
  );
});

Deno.test("parseProxyV2 answers any bytes with a client, none, or a TypeError, and nothing else", () => {
  const prefixed = fc.tuple(
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.uint8Array({ maxLength: 300 }),
  )
    .map(([vc, ft, body]) => header(vc, ft, [...body], body.length));
  fc.assert(
    fc.property(fc.oneof(prefixed, fc.uint8Array({ maxLength: 64 })), (bytes) => {
      try {
        const parsed = parseProxyV2(bytes);
        assert.ok(
          parsed === null || (typeof parsed.address === "string" && parsed.port >= 0 && parsed.port <= 65535),
        );
      } catch (err) {
        assert.ok(err instanceof TypeError, String(err));
      }
    }),
  );
});
