/**
 * Byte comparisons for tests. `assert.deepEqual` on byte arrays that differ renders every element of both
 * and diffs the renderings: a few KiB take seconds and a gigabyte, and a frame of 64 KiB inside an array
 * grows the test process until the kernel kills it, with nothing reported. These compare in one pass and
 * report where the bytes part: the lengths, the first differing index, and a few bytes around it.
 *
 * @module
 */

import assert, { AssertionError } from "node:assert/strict";

/** Bytes of context shown on each side of the first difference. */
const CONTEXT = 8;

/** Anything that holds bytes: a `Uint8Array`, another view, or an `ArrayBuffer`. */
export type Bytes = ArrayBufferView | ArrayBuffer;

function asBytes(value: Bytes): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function hex(bytes: Uint8Array, from: number, to: number): string {
  const shown = [...bytes.subarray(Math.max(0, from), Math.min(bytes.length, to))]
    .map((b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${from > 0 ? "… " : ""}${shown}${to < bytes.length ? " …" : ""}`;
}

/**
 * Where two byte strings first differ.
 *
 * @param actual The bytes a test got.
 * @param expected The bytes it expected.
 * @returns A description of the first difference, or `null` when they are equal.
 */
export function byteDifference(actual: Bytes, expected: Bytes): string | null {
  const a = asBytes(actual);
  const e = asBytes(expected);
  const shorter = Math.min(a.length, e.length);
  let i = 0;
  while (i < shorter && a[i] === e[i]) i++;
  if (i === shorter && a.length === e.length) return null;
  const lengths = a.length === e.length
    ? `both ${a.length} bytes`
    : `actual ${a.length} bytes, expected ${e.length}`;
  const where = i === shorter
    ? `equal up to index ${i}, where the ${a.length < e.length ? "actual" : "expected"} bytes end`
    : `first difference at index ${i}: actual 0x${a[i]!.toString(16).padStart(2, "0")}, expected 0x${
      e[i]!.toString(16).padStart(2, "0")
    }`;
  return `${lengths}; ${where}\n  actual:   ${hex(a, i - CONTEXT, i + CONTEXT)}\n  expected: ${
    hex(e, i - CONTEXT, i + CONTEXT)
  }`;
}

function fail(message: string | undefined, detail: string): never {
  throw new AssertionError({
    message: message === undefined ? `Bytes differ: ${detail}` : `${message}: ${detail}`,
  });
}

/**
 * Assert that two byte strings are equal, whatever their size, reporting the first difference.
 *
 * @example
 * ```ts
 * import { assertBytesEqual } from "./_bytes.ts";
 * assertBytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2]));
 * ```
 *
 * @param actual The bytes a test got (`null` or `undefined` fail).
 * @param expected The bytes it expected.
 * @param message What is compared, to start the failure's message.
 * @throws {AssertionError} When they differ.
 */
export function assertBytesEqual(
  actual: Bytes | null | undefined,
  expected: Bytes,
  message?: string,
): asserts actual is Bytes {
  if (actual === null || actual === undefined) {
    fail(message, `actual is ${actual}, expected ${asBytes(expected).length} bytes`);
  }
  const difference = byteDifference(actual, expected);
  if (difference !== null) fail(message, difference);
}

/**
 * Assert that two lists of byte strings are equal, reporting how many there are and where the first
 * differing one parts from the expected.
 *
 * @example
 * ```ts
 * import { assertByteArraysEqual } from "./_bytes.ts";
 * assertByteArraysEqual([new Uint8Array([1]), new Uint8Array(0)], [new Uint8Array([1]), new Uint8Array(0)]);
 * ```
 *
 * @param actual The byte strings a test got.
 * @param expected The ones it expected.
 * @param message What is compared, to start the failure's message.
 * @throws {AssertionError} When the counts or any of them differ.
 */
export function assertByteArraysEqual(
  actual: readonly Bytes[],
  expected: readonly Bytes[],
  message?: string,
): void {
  const shorter = Math.min(actual.length, expected.length);
  for (let i = 0; i < shorter; i++) {
    const difference = byteDifference(actual[i]!, expected[i]!);
    if (difference !== null) {
      fail(message, `item ${i} of ${actual.length} (expected ${expected.length} items): ${difference}`);
    }
  }
  if (actual.length !== expected.length) {
    fail(message, `${actual.length} items, expected ${expected.length}; the first ${shorter} are equal`);
  }
}

/** Every byte view in a value replaced by one string of hex (other values as they are, copied). */
function hexed(value: unknown, seen: Map<object, unknown>): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    const bytes = asBytes(value as Bytes);
    return `<${bytes.length} bytes ${bytes.toHex()}>`;
  }
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(hexed(item, seen));
    return out;
  }
  if (value instanceof Map) {
    const out = new Map();
    seen.set(value, out);
    for (const [k, v] of value) out.set(k, hexed(v, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    return value;
  }
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  for (const [k, v] of Object.entries(value)) out[k] = hexed(v, seen);
  return out;
}

/**
 * `assert.deepEqual` for values that hold byte arrays (decoded datagrams, records): each byte view is
 * compared as one string of hex, so a failure shows a short diff instead of rendering every byte.
 *
 * @example
 * ```ts
 * import { assertDeepEqualBytes } from "./_bytes.ts";
 * assertDeepEqualBytes({ type: "HS1", eph: new Uint8Array([1, 2]) }, { type: "HS1", eph: new Uint8Array([1, 2]) });
 * ```
 *
 * @param actual The value a test got.
 * @param expected The value it expected.
 * @param message What is compared.
 * @throws {AssertionError} When they differ.
 */
export function assertDeepEqualBytes(actual: unknown, expected: unknown, message?: string): void {
  assert.deepEqual(hexed(actual, new Map()), hexed(expected, new Map()), message);
}

/**
 * A counting byte pattern: `length` bytes from `start` up, wrapping at 256 (fields that are easy to tell
 * apart in a hex dump).
 *
 * @param length How many bytes.
 * @param start The first byte's value.
 * @returns The bytes.
 */
export function filled(length: number, start = 0): Uint8Array<ArrayBuffer> {
  return new Uint8Array(length).map((_, i) => (start + i) & 0xff);
}

/**
 * Byte strings (or arrays of byte values) one after another.
 *
 * @param parts The parts.
 * @returns Their concatenation.
 */
export function concat(...parts: (Uint8Array | number[])[]): Uint8Array<ArrayBuffer> {
  const arrays = parts.map((p) => Uint8Array.from(p));
  const out = new Uint8Array(arrays.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of arrays) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
