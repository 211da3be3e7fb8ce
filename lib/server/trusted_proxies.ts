/**
 * The load balancers whose connections name their client (`proxy_protocol_from`): addresses and networks,
 * IPv4 or IPv6, separated by commas (`10.0.0.10`, `10.0.0.0/24, fd00::/8`). Kept in a `node:net`
 * `BlockList`, which also matches an IPv4-mapped IPv6 address to its IPv4 entry.
 *
 * @module
 */

import net from "node:net";

/** Addresses and networks a connection from which must begin with a PROXY header. */
export class TrustedProxies {
  #list: net.BlockList;
  /** The entries as given, trimmed. */
  readonly entries: readonly string[];

  private constructor(list: net.BlockList, entries: string[]) {
    this.#list = list;
    this.entries = entries;
  }

  /**
   * Read a list.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TrustedProxies } from "./trusted_proxies.ts";
   * const proxies = TrustedProxies.parse("10.0.0.10, 192.168.0.0/16");
   * assert(proxies.has("192.168.4.1") && proxies.has("10.0.0.10") && !proxies.has("10.0.0.11"));
   * ```
   *
   * @param text Addresses and `address/prefix` networks, separated by commas.
   * @returns The set.
   * @throws {TypeError} Naming the first entry that is neither.
   */
  static parse(text: string): TrustedProxies {
    const list = new net.BlockList();
    const entries = text.split(",").map((entry) => entry.trim());
    for (const entry of entries) {
      const [address = "", prefix, ...more] = entry.split("/");
      const family = net.isIP(address);
      const bits = family === 4 ? 32 : 128;
      if (family === 0 || more.length > 0) {
        throw new TypeError(
          `expected IP addresses or networks (10.0.0.10, 10.0.0.0/24), not ${JSON.stringify(entry)}`,
        );
      }
      const type = family === 4 ? "ipv4" : "ipv6";
      if (prefix === undefined) {
        list.addAddress(address, type);
        continue;
      }
      const length = /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
      if (!(length >= 0 && length <= bits)) {
        throw new TypeError(`${JSON.stringify(entry)}: the prefix length must be 0 to ${bits}`);
      }
      list.addSubnet(address, length, type);
    }
    return new TrustedProxies(list, entries);
  }

  /**
   * Whether connections from an address must carry a PROXY header.
   *
   * @param address The connection's remote address.
   * @returns Whether it is in the list.
   */
  has(address: string): boolean {
    const family = net.isIP(address);
    if (family === 0) return false;
    return this.#list.check(address, family === 4 ? "ipv4" : "ipv6");
  }
}
