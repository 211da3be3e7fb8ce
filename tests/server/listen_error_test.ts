import assert from "node:assert/strict";
import { ListenError, listenErrorFrom } from "../../lib/server/listen_error.ts";

/** An error shaped as `node:net` reports it. */
function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const TCP = { key: "tcp_port", host: "127.0.0.1", port: 1991 } as const;

Deno.test("listenErrorFrom names the port and its key when the address is in use, from Deno and node alike", () => {
  const fromDeno = listenErrorFrom(new Deno.errors.AddrInUse("Address already in use (os error 98)"), TCP);
  assert.ok(fromDeno instanceof ListenError);
  assert.equal(fromDeno.key, "tcp_port");
  assert.equal(
    fromDeno.message,
    "Cannot listen on 127.0.0.1:1991 for tcp_port: address already in use (another authchat server?): " +
      "choose another with --tcp-port or tcp_port in the config",
  );
  const tls = listenErrorFrom(nodeError("EADDRINUSE", "listen EADDRINUSE: address already in use"), {
    key: "tls_port",
    host: "::1",
    port: 1992,
  });
  assert.equal(
    tls?.message,
    "Cannot listen on [::1]:1992 for tls_port: address already in use (another authchat server?): " +
      "choose another with --tls-port or tls_port in the config",
  );
  const udp = listenErrorFrom(new Deno.errors.AddrInUse("in use"), { ...TCP, key: "udp_port" });
  assert.match(udp!.message, /for udp_port: .*--udp-port or udp_port in the config$/);
});

Deno.test("listenErrorFrom explains a refused low port, and a refused high one without the hint", () => {
  const low = listenErrorFrom(new Deno.errors.PermissionDenied("Permission denied (os error 13)"), {
    ...TCP,
    port: 80,
  });
  assert.equal(
    low?.message,
    "Cannot listen on 127.0.0.1:80 for tcp_port: permission denied (ports below 1024 need privileges): " +
      "choose another with --tcp-port or tcp_port in the config",
  );
  const high = listenErrorFrom(nodeError("EACCES", "listen EACCES"), { ...TCP, key: "tls_port", port: 5000 });
  assert.match(high!.message, /for tls_port: permission denied: choose another/);
});

Deno.test("listenErrorFrom blames host for an address this machine lacks or a name that does not resolve", () => {
  const missing = listenErrorFrom(new Deno.errors.AddrNotAvailable("Cannot assign requested address"), {
    ...TCP,
    host: "10.1.2.3",
  });
  assert.equal(missing?.key, "host");
  assert.match(
    missing!.message,
    /^Cannot listen on 10\.1\.2\.3:1991 for host: 10\.1\.2\.3 is not an address/,
  );
  assert.equal(
    listenErrorFrom(nodeError("EINVAL", "listen EINVAL"), { ...TCP, host: "10.1.2.3" })?.key,
    "host",
  );
  for (
    const err of [
      new Error("failed to lookup address information: Name or service not known"),
      nodeError("ENOTFOUND", "getaddrinfo ENOTFOUND chat.invalid"),
    ]
  ) {
    const unresolved = listenErrorFrom(err, { ...TCP, host: "chat.invalid" });
    assert.equal(
      unresolved?.message,
      "Cannot listen on chat.invalid:1991 for host: cannot resolve chat.invalid: choose another with --host " +
        "or host in the config",
    );
  }
});

Deno.test("listenErrorFrom leaves other errors alone", () => {
  assert.equal(listenErrorFrom(new Deno.errors.NotCapable("Requires net access"), TCP), null);
  assert.equal(listenErrorFrom(new Error("Something else"), TCP), null);
});

Deno.test("listenErrorFrom turns a real bind on a taken port into the error", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    let err: unknown;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch (e) {
      err = e;
    }
    assert.match(
      listenErrorFrom(err, { ...TCP, port })!.message,
      new RegExp(`127\\.0\\.0\\.1:${port} for tcp_port`),
    );
  } finally {
    taken.close();
  }
});
