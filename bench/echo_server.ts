/**
 * The benchmark's floor: a bare echo server on the runtime authchat runs on, with the same listeners
 * (`Deno.listen`, `Deno.listenTls` with the server's own certificate, `Deno.listenDatagram`). Whatever it
 * does per connection and per datagram is the least any server on this runtime can do.
 *
 * Usage: `deno run --allow-net --allow-read bench/echo_server.ts CERT.pem KEY.pem`; prints
 * `echo listening tcp=PORT tls=PORT udp=PORT` when ready, and runs until killed.
 *
 * @module
 */

async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      let written = 0;
      while (written < n) written += await conn.write(buffer.subarray(written, n));
    }
  } catch {
    // The client went away.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function serve(listener: Deno.Listener): Promise<void> {
  for await (const conn of listener) {
    if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") conn.setNoDelay(true);
    void echo(conn);
  }
}

async function serveDatagrams(socket: Deno.DatagramConn): Promise<void> {
  for (;;) {
    const [bytes, addr] = await socket.receive();
    socket.send(bytes, addr).catch(() => {});
  }
}

if (import.meta.main) {
  const [certFile, keyFile] = Deno.args;
  if (!certFile || !keyFile) {
    console.error("usage: echo_server.ts CERT.pem KEY.pem");
    Deno.exit(2);
  }
  const hostname = "127.0.0.1";
  const tcp = Deno.listen({ hostname, port: 0 });
  const tls = Deno.listenTls({
    hostname,
    port: 0,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  });
  const udp = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
  const port = (a: Deno.Addr) => (a as Deno.NetAddr).port;
  console.log(`echo listening tcp=${port(tcp.addr)} tls=${port(tls.addr)} udp=${port(udp.addr)}`);
  await Promise.all([serve(tcp), serve(tls), serveDatagrams(udp)]);
}
