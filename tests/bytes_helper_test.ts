import assert from "node:assert/strict";
import { AssertionError } from "node:assert";
import { assertByteArraysEqual, assertBytesEqual, assertDeepEqualBytes, byteDifference } from "./_bytes.ts";

const MiB = 1 << 20;

function failure(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AssertionError, `an AssertionError, not ${err}`);
    return err.message;
  }
  assert.fail("no failure");
}

Deno.test("assertBytesEqual passes equal bytes of any view and reports the first difference", () => {
  const bytes = new Uint8Array([1, 2, 3, 4]);
  assertBytesEqual(bytes, new Uint8Array([1, 2, 3, 4]));
  assertBytesEqual(bytes.buffer, bytes);
  assertBytesEqual(new DataView(bytes.buffer, 1, 2), new Uint8Array([2, 3]));
  assert.equal(byteDifference(new Uint8Array(0), new Uint8Array(0)), null);

  const changed = failure(() => assertBytesEqual(new Uint8Array([1, 2, 9, 4]), bytes, "the frame"));
  assert.match(
    changed,
    /^the frame: both 4 bytes; first difference at index 2: actual 0x09, expected 0x03\n/,
  );
  assert.match(changed, /actual: {3}01 02 09 04\n {2}expected: 01 02 03 04$/);
  assert.match(
    failure(() => assertBytesEqual(bytes.subarray(0, 3), bytes)),
    /^Bytes differ: actual 3 bytes, expected 4; equal up to index 3, where the actual bytes end/,
  );
  assert.match(
    failure(() => assertBytesEqual(bytes, bytes.subarray(0, 2))),
    /actual 4 bytes, expected 2; equal up to index 2, where the expected bytes end/,
  );
  assert.match(
    failure(() => assertBytesEqual(null, bytes, "decoded")),
    /^decoded: actual is null, expected 4 bytes$/,
  );
});

Deno.test("assertBytesEqual reports a difference in megabytes at once, with a few bytes around it", () => {
  const expected = new Uint8Array(16 * MiB).fill(0xaa);
  const actual = expected.slice();
  actual[12_345_678] = 0xab;
  const message = failure(() => assertBytesEqual(actual, expected));
  assert.match(message, /first difference at index 12345678: actual 0xab, expected 0xaa/);
  assert.ok(message.length < 400, `a short message (${message.length} characters)`);
});

Deno.test("assertByteArraysEqual reports the item, the index in it, and differing counts", () => {
  const a = [new Uint8Array(64 * 1024).fill(1), new Uint8Array(64 * 1024).fill(2)];
  assertByteArraysEqual(a, a.map((x) => x.slice()));
  const b = a.map((x) => x.slice());
  b[1]![40_000] = 7;
  assert.match(
    failure(() => assertByteArraysEqual(b, a, "payloads")),
    /^payloads: item 1 of 2 \(expected 2 items\): both 65536 bytes; first difference at index 40000: actual 0x07, expected 0x02/,
  );
  assert.match(
    failure(() => assertByteArraysEqual(a.slice(0, 1), a)),
    /^Bytes differ: 1 items, expected 2; the first 1 are equal$/,
  );
});

Deno.test("assertDeepEqualBytes compares the byte arrays inside a value as hex, and fails fast on large ones", () => {
  const value = {
    type: "RELAY",
    to: 7,
    inner: new Uint8Array(64 * 1024).fill(3),
    list: [new Uint8Array([1])],
  };
  assertDeepEqualBytes(value, structuredClone(value));
  const other = structuredClone(value);
  other.inner[30_000] = 4;
  const message = failure(() => assertDeepEqualBytes(other, value, "decoded"));
  assert.match(message, /^decoded\n/);
  assert.match(message, /<65536 bytes 0303/);
  assert.match(failure(() => assertDeepEqualBytes({ ...value, to: 8 }, value)), /to: 8/);
  assert.match(failure(() => assertDeepEqualBytes({ ...value, list: [] }, value)), /list/);
});
