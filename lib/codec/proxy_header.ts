/**
 * The PROXY protocol version 2 header (HAProxy's `send-proxy-v2`,
 * https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt §2.2): the
 * bytes a load balancer sends first on each connection it opens to a
 * server, naming the client's address. Pure functions over bytes: which
 * connections may carry one is the server's to decide (only those from a
 * trusted balancer: anyone else could name any address).
 *
 * Layout: a 12-byte signature; a byte holding the version (2, high nibble)
 * and the command (low nibble: 0 `LOCAL`, the balancer's own connection such
 * as a health check; 1 `PROXY`); a byte holding the address family (high
 * nibble: 0 unspecified, 1 IPv4, 2 IPv6, 3 Unix) and the transport (low
 * nibble: 0 unspecified, 1 stream, 2 datagram); a big-endian u16 length of
 * what follows: the addresses (IPv4: source, destination, source port,
 * destination port: 12 bytes; IPv6: 36; Unix: 216), then optional TLVs,
 * which are skipped.
 *
 * @module
 */

/** The 12 bytes every version 2 header starts with. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

/** Length of the fixed part: signature, version and command, family and transport, length. */
export const PROXY_V2_PREFIX_LENGTH = 16;

/**
 * The longest part after the prefix accepted: the largest address block (Unix, 216 bytes) and TLVs up to
 * this bound (a balancer sends none unless told to; the specification allows up to 65,535 bytes).
 */
export const MAX_PROXY_V2_BODY = 1024;

/**
 * The client a header names: its address (IPv4 dotted, IPv6 as RFC 5952 writes it, IPv4-mapped IPv6 as the
 * IPv4 address) and port.
 */
export interface ProxySource {
  /** The client's address. */
  address: string;
  /** The client's port. */
  port: number;
}

const ADDRESS_BYTES: Readonly<Record<number, number>> = { 0x1: 12, 0x2: 36, 0x3: 216 };

/**
 * Check the fixed part of a header and say how many bytes follow it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeProxyV2, proxyV2BodyLength } from "./proxy_header.ts";
 * const header = encodeProxyV2({ address: "203.0.113.7", port: 51000 }, { address: "10.0.0.11", port: 1991 });
 * assert(proxyV2BodyLength(header.subarray(0, 16)) === 12);
 * ```
 *
 * @param prefix The first {@linkcode PROXY_V2_PREFIX_LENGTH} bytes of the connection.
 * @returns The length of the rest of the header.
 * @throws {TypeError} When they are not the start of a version 2 header, or announce more than
 *   {@linkcode MAX_PROXY_V2_BODY} bytes or fewer than their address family needs.
 */
export function proxyV2BodyLength(prefix: Uint8Array): number {
  if (prefix.length < PROXY_V2_PREFIX_LENGTH) {
    throw new TypeError(`PROXY header too short: ${prefix.length} bytes, the fixed part is 16`);
  }
  for (let i = 0; i < PROXY_V2_SIGNATURE.length; i++) {
    if (prefix[i] !== PROXY_V2_SIGNATURE[i]) {
      throw new TypeError("Not a PROXY protocol v2 header: bad signature");
    }
  }
  const versionCommand = prefix[12]!;
  if (versionCommand >> 4 !== 2) {
    throw new TypeError(`Unsupported PROXY protocol version: ${versionCommand >> 4}`);
  }
  const command = versionCommand & 0x0f;
  if (command > 1) throw new TypeError(`Unknown PROXY command: ${command}`);
  const family = prefix[13]! >> 4;
  const transport = prefix[13]! & 0x0f;
  if (family > 3 || transport > 2) {
    throw new TypeError(`Unknown PROXY address family or transport: 0x${prefix[13]!.toString(16)}`);
  }
  const length = (prefix[14]! << 8) | prefix[15]!;
  if (length > MAX_PROXY_V2_BODY) {
    throw new TypeError(
      `PROXY header too long: ${length} bytes after the fixed part, at most ${MAX_PROXY_V2_BODY}`,
    );
  }
  const needed = ADDRESS_BYTES[family] ?? 0;
  if (command === 1 && length < needed) {
    throw new TypeError(`PROXY header too short for its addresses: ${length} bytes, ${needed} needed`);
  }
  return length;
}

/**
 * An IPv6 address from 16 bytes, as RFC 5952 writes it (WHATWG's URL serializer does exactly that); an
 * IPv4-mapped one (a balancer listening on both families) as the IPv4 address it carries.
 */
function ipv6(bytes: Uint8Array): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return Array.from(bytes.subarray(12, 16)).join(".");
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/**
 * The client a whole header names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeProxyV2, parseProxyV2 } from "./proxy_header.ts";
 * const header = encodeProxyV2({ address: "2001:db8::7", port: 51000 }, { address: "2001:db8::11", port: 1991 });
 * assert.deepEqual(parseProxyV2(header), { address: "2001:db8::7", port: 51000 });
 * ```
 *
 * @param header The fixed part and the body, exactly.
 * @returns The client; `null` when the header names none: a `LOCAL` command (the balancer speaking for
 *   itself), or an unspecified or Unix address family (then the connection's own address stands).
 * @throws {TypeError} When the bytes are not one well-formed header.
 */
export function parseProxyV2(header: Uint8Array): ProxySource | null {
  const length = proxyV2BodyLength(header);
  if (header.length !== PROXY_V2_PREFIX_LENGTH + length) {
    throw new TypeError(
      `PROXY header length mismatch: ${header.length} bytes, the header announces ${
        PROXY_V2_PREFIX_LENGTH + length
      }`,
    );
  }
  if ((header[12]! & 0x0f) === 0) return null;
  const body = header.subarray(PROXY_V2_PREFIX_LENGTH);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  switch (header[13]! >> 4) {
    case 0x1:
      return { address: Array.from(body.subarray(0, 4)).join("."), port: view.getUint16(8) };
    case 0x2:
      return { address: ipv6(body.subarray(0, 16)), port: view.getUint16(32) };
    default:
      return null;
  }
}

/** Bytes of an IPv4 or IPv6 address in text. */
function addressBytes(address: string): Uint8Array {
  if (!address.includes(":")) {
    const parts = address.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
      throw new TypeError(`Not an IPv4 address: ${address}`);
    }
    return new Uint8Array(parts);
  }
  // The URL parser expands and checks it; read its eight groups back.
  const groups = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = groups.includes("::") ? groups.split("::") as [string, string] : [groups, null];
  const left = head === "" ? [] : head.split(":");
  const right = tail === null || tail === "" ? [] : tail.split(":");
  const all = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => new DataView(bytes.buffer).setUint16(i * 2, parseInt(g, 16)));
  return bytes;
}

/**
 * A `PROXY` header for a TCP connection, as a balancer sends it (for tests, and for anyone putting a
 * balancer of their own in front of a server).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeProxyV2 } from "./proxy_header.ts";
 * assert(encodeProxyV2({ address: "203.0.113.7", port: 1 }, { address: "10.0.0.11", port: 2 }).length === 28);
 * ```
 *
 * @param source The client's address and port.
 * @param destination The address and port the client connected to (of the same family).
 * @returns The header's bytes.
 * @throws {TypeError} When an address is not IPv4 or IPv6 text, or the two are of different families.
 */
export function encodeProxyV2(source: ProxySource, destination: ProxySource): Uint8Array {
  const from = addressBytes(source.address);
  const to = addressBytes(destination.address);
  if (from.length !== to.length) throw new TypeError("PROXY source and destination of different families");
  const body = new Uint8Array(from.length * 2 + 4);
  body.set(from, 0);
  body.set(to, from.length);
  const view = new DataView(body.buffer);
  view.setUint16(from.length * 2, source.port);
  view.setUint16(from.length * 2 + 2, destination.port);
  const header = new Uint8Array(PROXY_V2_PREFIX_LENGTH + body.length);
  header.set(PROXY_V2_SIGNATURE);
  header[12] = 0x21;
  header[13] = from.length === 4 ? 0x11 : 0x21;
  header[14] = body.length >> 8;
  header[15] = body.length & 0xff;
  header.set(body, PROXY_V2_PREFIX_LENGTH);
  return header;
}
