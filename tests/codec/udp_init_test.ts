import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeInit,
  decodeRetry,
  encodeInit,
  encodeRetry,
  INIT_BYTES,
  INIT_COOKIE_OFFSET,
  INIT_RANDOM_OFFSET,
  INIT_SHARE_OFFSET,
  UdpInitFormatError,
} from "../../lib/codec/udp_init.ts";
import { assertBytesEqual, filled } from "../_bytes.ts";

const RANDOM = filled(32, 0x40);
const SHARE = filled(32, 0x80);
const COOKIE = filled(29, 0xc0);
const NONCE = filled(8, 0x11);

/** An INIT built by hand, byte by byte, not by the code under test. */
function handInit(cookie: number[], nonce: number[], version = 1): Uint8Array<ArrayBuffer> {
  const head = [0xac, 0x01, 0x30, version, ...RANDOM, ...SHARE, cookie.length, ...cookie, ...nonce];
  const out = new Uint8Array(1200);
  out.set(head);
  return out;
}

function assertFormat(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert(err instanceof UdpInitFormatError, `not a UdpInitFormatError: ${err}`);
    assert(err instanceof RangeError);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

Deno.test("encodeInit writes the documented bytes, padded with zeros to 1200", () => {
  const bytes = encodeInit({ clientRandom: RANDOM, clientShare: SHARE, cookie: COOKIE, powNonce: NONCE });
  assertBytesEqual(bytes, handInit([...COOKIE], [...NONCE]));
  assert.equal(bytes.length, INIT_BYTES);
  assert.equal(INIT_RANDOM_OFFSET, 4);
  assert.equal(INIT_SHARE_OFFSET, 36);
  assert.equal(INIT_COOKIE_OFFSET, 68);
  assertBytesEqual(bytes.subarray(4, 36), RANDOM);
  assertBytesEqual(bytes.subarray(36, 68), SHARE);
});

Deno.test("encodeInit without a cookie has an empty cookie and a zero nonce", () => {
  const bytes = encodeInit({ clientRandom: RANDOM, clientShare: SHARE });
  assertBytesEqual(bytes, handInit([], [0, 0, 0, 0, 0, 0, 0, 0]));
});

Deno.test("decodeInit reads every field of a hand-built INIT", () => {
  const init = decodeInit(handInit([...COOKIE], [...NONCE]));
  assert.equal(init.version, 1);
  assertBytesEqual(init.clientRandom, RANDOM);
  assertBytesEqual(init.clientShare, SHARE);
  assertBytesEqual(init.cookie, COOKIE);
  assertBytesEqual(init.powNonce, NONCE);
  assertBytesEqual(init.bound, handInit([], []).subarray(0, 68));
});

Deno.test("decodeInit copies: changing the input later does not change the result", () => {
  const bytes = handInit([...COOKIE], [...NONCE]);
  const init = decodeInit(bytes);
  bytes.fill(0xff);
  assertBytesEqual(init.clientRandom, RANDOM);
  assertBytesEqual(init.cookie, COOKIE);
});

Deno.test("decodeInit refuses each malformation with its code", () => {
  const good = handInit([...COOKIE], [...NONCE]);
  const rows: [string, Uint8Array, string][] = [
    ["one byte short", good.subarray(0, 1199), "length"],
    ["one byte long", new Uint8Array([...good, 0]), "length"],
    ["empty", new Uint8Array(0), "length"],
    ["a RETRY-sized datagram", good.subarray(0, 66), "length"],
    ["wrong magic", Uint8Array.from(good, (b, i) => (i === 0 ? 0xad : b)), "prefix"],
    ["wrong datagram version", Uint8Array.from(good, (b, i) => (i === 1 ? 0x02 : b)), "prefix"],
    ["RETRY type", Uint8Array.from(good, (b, i) => (i === 2 ? 0x31 : b)), "type"],
    ["RDV type", Uint8Array.from(good, (b, i) => (i === 2 ? 0x01 : b)), "type"],
    ["session version 2", handInit([...COOKIE], [...NONCE], 2), "version"],
    ["session version 0", handInit([...COOKIE], [...NONCE], 0), "version"],
    ["last padding byte set", Uint8Array.from(good, (b, i) => (i === 1199 ? 1 : b)), "padding"],
    [
      "first padding byte set",
      Uint8Array.from(good, (b, i) => (i === 68 + 1 + 29 + 8 ? 0x80 : b)),
      "padding",
    ],
    ["nonce without a cookie", handInit([], [0, 0, 0, 0, 0, 0, 0, 1]), "field"],
  ];
  for (const [what, bytes, code] of rows) {
    assert.doesNotThrow(() => assertFormat(() => decodeInit(bytes), code), what);
  }
});

Deno.test("decodeInit: a cookie length that eats into the nonce leaves non-zero bytes in the padding", () => {
  // The cookie length byte says 28 where 29 bytes follow: the nonce starts one byte early and its last byte
  // lands in the padding, which must be zero.
  const bytes = handInit([...COOKIE], [...NONCE]);
  bytes[68] = 28;
  assertFormat(() => decodeInit(bytes), "padding");
});

Deno.test("decodeInit: any non-zero padding byte is refused at its offset, wherever the datagram sits in memory", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 29 }),
      fc.integer({ min: 0, max: INIT_BYTES - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (shift, cookieLength, at, value) => {
        const init = encodeInit({
          clientRandom: RANDOM,
          clientShare: SHARE,
          cookie: COOKIE.subarray(0, cookieLength),
        });
        // The receive buffer's datagram may start at any byte: the padding is read in words where aligned.
        const memory = new Uint8Array(INIT_BYTES + 16).fill(0xff);
        const bytes = memory.subarray(shift, shift + INIT_BYTES);
        bytes.set(init);
        const decoded = decodeInit(bytes);
        assertBytesEqual(decoded.cookie, COOKIE.subarray(0, cookieLength));
        // Its fields are a copy: the buffer's next datagram does not change them.
        bytes.fill(0x5a);
        assertBytesEqual(decoded.clientRandom, RANDOM);
        bytes.set(init);
        const padAt = INIT_COOKIE_OFFSET + 1 + cookieLength + 8;
        if (at < padAt) return;
        bytes[at] = value;
        assert.throws(() => decodeInit(bytes), (err: unknown) => {
          assert(err instanceof UdpInitFormatError && err.code === "padding");
          assert.match(err.message, new RegExp(`offset ${at} `));
          return true;
        });
      },
    ),
  );
});

Deno.test("decodeInit: a datagram past the buffer's first 2 GiB decodes, and its padding is still checked", () => {
  // The padding's word alignment must not be worked out in 32-bit bitwise arithmetic: at a byteOffset of 2^31
  // or more it goes negative and a Uint32Array at an unaligned offset throws a bare RangeError (decodeInit
  // promises UdpInitFormatError only). Zero-filled memory: the pages not written are never touched.
  const memory = new Uint8Array(2 ** 31 + 4096);
  const init = encodeInit({ clientRandom: RANDOM, clientShare: SHARE, cookie: COOKIE, powNonce: NONCE });
  const padAt = INIT_COOKIE_OFFSET + 1 + COOKIE.length + 8;
  for (const offset of [2 ** 31 - 80, 2 ** 31 - 3, 2 ** 31, 2 ** 31 + 1, 2 ** 31 + 2048]) {
    const bytes = memory.subarray(offset, offset + INIT_BYTES);
    bytes.set(init);
    assertBytesEqual(decodeInit(bytes).cookie, COOKIE, `offset ${offset}`);
    for (const at of [padAt, padAt + 5, INIT_BYTES - 1]) {
      bytes[at] = 1;
      assert.throws(() => decodeInit(bytes), (err: unknown) => {
        assert(err instanceof UdpInitFormatError && err.code === "padding", `offset ${offset}: ${err}`);
        assert.match(err.message, new RegExp(`offset ${at} `));
        return true;
      });
      bytes[at] = 0;
    }
    bytes.fill(0);
  }
});

Deno.test("encodeInit refuses fields out of range", () => {
  const rows: [Parameters<typeof encodeInit>[0], string][] = [
    [{ clientRandom: new Uint8Array(31), clientShare: SHARE }, "client_random"],
    [{ clientRandom: RANDOM, clientShare: new Uint8Array(33) }, "client_share"],
    [{ clientRandom: RANDOM, clientShare: SHARE, cookie: new Uint8Array(256) }, "cookie"],
    [{ clientRandom: RANDOM, clientShare: SHARE, cookie: COOKIE, powNonce: new Uint8Array(7) }, "pow_nonce"],
    [{ clientRandom: RANDOM, clientShare: SHARE, powNonce: NONCE }, "pow_nonce"],
  ];
  for (const [fields, what] of rows) {
    assert.throws(() => encodeInit(fields), (err: unknown) => {
      assert(err instanceof UdpInitFormatError && err.code === "field");
      assert.match(err.message, new RegExp(what));
      return true;
    });
  }
});

Deno.test("encodeRetry writes the documented bytes, far smaller than an INIT", () => {
  const bytes = encodeRetry({ echo: RANDOM, cookie: COOKIE, difficulty: 17 });
  assertBytesEqual(bytes, Uint8Array.from([0xac, 0x01, 0x31, ...RANDOM, 29, ...COOKIE, 17]));
  assert(bytes.length < INIT_BYTES / 10);
  const largest = encodeRetry({ echo: RANDOM, cookie: new Uint8Array(255), difficulty: 255 });
  assert.equal(largest.length, 292);
});

Deno.test("decodeRetry reads a hand-built RETRY", () => {
  const retry = decodeRetry(Uint8Array.from([0xac, 0x01, 0x31, ...RANDOM, 29, ...COOKIE, 9]));
  assertBytesEqual(retry.echo, RANDOM);
  assertBytesEqual(retry.cookie, COOKIE);
  assert.equal(retry.difficulty, 9);
});

Deno.test("decodeRetry refuses each malformation with its code", () => {
  const good = [0xac, 0x01, 0x31, ...RANDOM, 29, ...COOKIE, 9];
  const rows: [string, number[], string][] = [
    ["empty", [], "truncated"],
    ["prefix only", [0xac, 0x01], "truncated"],
    ["wrong magic", [0x00, ...good.slice(1)], "prefix"],
    ["INIT type", [0xac, 0x01, 0x30, ...good.slice(3)], "type"],
    ["no cookie length", good.slice(0, 35), "truncated"],
    ["empty cookie", [...good.slice(0, 35), 0, 9], "field"],
    ["cookie cut short", good.slice(0, 50), "truncated"],
    ["no difficulty", good.slice(0, -1), "truncated"],
    ["one trailing byte", [...good, 0], "trailing"],
    ["padded to 1200", [...good, ...new Uint8Array(1200 - good.length)], "trailing"],
    ["over 1200", [...good, ...new Uint8Array(1201 - good.length)], "length"],
  ];
  for (const [what, bytes, code] of rows) {
    assert.doesNotThrow(() => assertFormat(() => decodeRetry(Uint8Array.from(bytes)), code), what);
  }
});

Deno.test("encodeRetry refuses fields out of range", () => {
  for (
    const fields of [
      { echo: new Uint8Array(16), cookie: COOKIE, difficulty: 0 },
      { echo: RANDOM, cookie: new Uint8Array(0), difficulty: 0 },
      { echo: RANDOM, cookie: new Uint8Array(256), difficulty: 0 },
      { echo: RANDOM, cookie: COOKIE, difficulty: 256 },
      { echo: RANDOM, cookie: COOKIE, difficulty: -1 },
      { echo: RANDOM, cookie: COOKIE, difficulty: 1.5 },
    ]
  ) {
    assertFormat(() => encodeRetry(fields), "field");
  }
});

const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

Deno.test("INIT round-trips any valid fields (property)", () => {
  fc.assert(
    fc.property(
      bytesOf(32),
      bytesOf(32),
      fc.uint8Array({ minLength: 1, maxLength: 255 }),
      bytesOf(8),
      (clientRandom, clientShare, cookie, powNonce) => {
        const init = decodeInit(encodeInit({ clientRandom, clientShare, cookie, powNonce }));
        assertBytesEqual(init.clientRandom, clientRandom);
        assertBytesEqual(init.clientShare, clientShare);
        assertBytesEqual(init.cookie, cookie);
        assertBytesEqual(init.powNonce, powNonce);
      },
    ),
  );
});

Deno.test("RETRY round-trips any valid fields (property)", () => {
  fc.assert(
    fc.property(
      bytesOf(32),
      fc.uint8Array({ minLength: 1, maxLength: 255 }),
      fc.integer({ min: 0, max: 255 }),
      (echo, cookie, difficulty) => {
        const retry = decodeRetry(encodeRetry({ echo, cookie, difficulty }));
        assertBytesEqual(retry.echo, echo);
        assertBytesEqual(retry.cookie, cookie);
        assert.equal(retry.difficulty, difficulty);
      },
    ),
  );
});

Deno.test("decodeInit and decodeRetry throw only UdpInitFormatError on random bytes (property)", () => {
  const datagram = fc.oneof(
    fc.uint8Array({ maxLength: 1300 }),
    // Mostly-valid INITs with a few bytes flipped reach the deeper checks.
    fc.tuple(fc.integer({ min: 0, max: 1199 }), fc.integer({ min: 0, max: 255 }), fc.nat(255)).map(
      ([at, value, length]) => {
        const bytes = handInit([...new Uint8Array(length % 40)], [...NONCE]);
        bytes[at] = value;
        return bytes;
      },
    ),
  );
  fc.assert(
    fc.property(datagram, (bytes) => {
      for (const decode of [decodeInit, decodeRetry]) {
        try {
          decode(bytes);
        } catch (err) {
          assert(err instanceof UdpInitFormatError, `unexpected ${err}`);
        }
      }
    }),
  );
});
