/**
 * The benchmark's floor: a bare echo server on the runtime authchat runs on, with the same listeners as the
 * server (`Deno.listen`, `node:tls` with the server's own certificate and Nagle off, `Deno.listenDatagram`).
 * Whatever it does per connection and per datagram is the least any server on this runtime can do.
 *
 * Usage: `deno run --allow-net --allow-read bench/echo_server.ts CERT.pem KEY.pem`; prints
 * `echo listening tcp=HOST:PORT tls=HOST:PORT udp=HOST:PORT` (the shape of the server's own ready line) when
 * ready, and runs until killed.
 *
 * @module
 */

import tls from "node:tls";

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

function serveTls(cert: string, key: string, hostname: string): Promise<tls.Server> {
  const server = tls.createServer({ cert, key }, (socket) => {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => socket.write(chunk));
    socket.on("error", () => socket.destroy());
  });
  server.on("tlsClientError", () => {});
  return new Promise((resolve) => server.listen(0, hostname, () => resolve(server)));
}

async function serve(listener: Deno.TcpListener): Promise<void> {
  for await (const conn of listener) {
    conn.setNoDelay(true);
    void echo(conn);
  }
}

async function serveDatagrams(socket: Deno.DatagramConn): Promise<void> {
  // One buffer for every read, as the server's and the client's sockets have: without one, Deno allocates
  // 64 KiB for each datagram, and the floor would time the garbage collector. The send gets a copy, since
  // it is not awaited.
  const buffer = new Uint8Array(2048);
  for (;;) {
    const [bytes, addr] = await socket.receive(buffer);
    socket.send(bytes.slice(), addr).catch(() => {});
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
  const secure = await serveTls(
    await Deno.readTextFile(certFile),
    await Deno.readTextFile(keyFile),
    hostname,
  );
  const udp = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
  const tlsPort = (secure.address() as { port: number }).port;
  // A datagram socket's address is typed as any Deno.Addr, a listener's as the NetAddr it is.
  const udpPort = (udp.addr as Deno.NetAddr).port;
  console.log(
    `echo listening tcp=${hostname}:${tcp.addr.port} tls=${hostname}:${tlsPort} udp=${hostname}:${udpPort}`,
  );
  await Promise.all([serve(tcp), serveDatagrams(udp)]);
}
