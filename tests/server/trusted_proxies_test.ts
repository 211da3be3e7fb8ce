import assert from "node:assert/strict";
import { TrustedProxies } from "../../lib/server/trusted_proxies.ts";

Deno.test("TrustedProxies holds addresses and networks of both families, and IPv4-mapped addresses as IPv4", () => {
  const proxies = TrustedProxies.parse(" 10.0.0.10 ,192.168.0.0/16, fd00::/8, 2001:db8::5");
  assert.deepEqual(proxies.entries, ["10.0.0.10", "192.168.0.0/16", "fd00::/8", "2001:db8::5"]);
  for (const address of ["10.0.0.10", "192.168.255.1", "fd12:3456::1", "2001:db8::5", "::ffff:10.0.0.10"]) {
    assert.ok(proxies.has(address), address);
  }
  for (const address of ["10.0.0.11", "192.169.0.1", "fe80::1", "2001:db8::6", "", "lb.example"]) {
    assert.ok(!proxies.has(address), address);
  }
  assert.ok(TrustedProxies.parse("0.0.0.0/0").has("203.0.113.7"), "a /0 takes every address of its family");
  assert.ok(!TrustedProxies.parse("0.0.0.0/0").has("2001:db8::1"));
});

Deno.test("TrustedProxies refuses an entry that is no address or network, naming it", () => {
  for (
    const text of [
      "",
      "10.0.0.1,",
      "10.0.0.256",
      "10.0.0.0/33",
      "10.0.0.0/-1",
      "10.0.0.0/ 8",
      "::/129",
      "a/b",
    ]
  ) {
    assert.throws(() => TrustedProxies.parse(text), TypeError, text);
  }
});
