import assert from "node:assert/strict";
import { closestName } from "../../lib/server/closest_name.ts";

const PORTS = ["tcp_port", "tls_port", "udp_port", "host", "name"];

Deno.test("closestName finds the name one typo away: a swap, a missing, an extra or a wrong letter", () => {
  assert.equal(closestName("tcp_prot", PORTS), "tcp_port");
  assert.equal(closestName("tcp_pot", PORTS), "tcp_port");
  assert.equal(closestName("tcp_portt", PORTS), "tcp_port");
  assert.equal(closestName("tcp_pord", PORTS), "tcp_port");
  assert.equal(closestName("TCP_PORT", PORTS), "tcp_port", "case aside");
  assert.equal(closestName("hots", PORTS), "host");
});

Deno.test("closestName suggests nothing when no name is close or two are equally close", () => {
  assert.equal(closestName("colour", PORTS), undefined);
  assert.equal(closestName("port", PORTS), undefined, "tcp_port, tls_port and udp_port tie");
  assert.equal(closestName("t_port", ["tcp_port", "tls_port"]), undefined);
  assert.equal(closestName("x", []), undefined);
});
