/**
 * The authchat server: TCP and TLS listeners feeding session engines that
 * share one store, rate limiter and session registry.
 *
 * Every connection holds a file descriptor, so the server caps them
 * (`max_connections`, by default below the descriptors it finds free at start:
 * descriptor_limit.ts), sheds connections not logged in to make room at the cap
 * (session_registry.ts), and pauses after a failed accept (_accept_backoff.ts)
 * instead of spinning on one that fails at once again.
 *
 * TLS is served with `node:tls` rather than `Deno.listenTls`: a `Deno.TlsConn`
 * cannot turn off Nagle's algorithm, and a small reply written while another is
 * unacknowledged then waits for the client's delayed ACK — 40 ms on every
 * login (measured; see docs/BENCHMARKS.md).
 *
 * @module
 */

import tls from "node:tls";
import net from "node:net";
import type { Socket } from "node:net";
import { NodeSocketStream } from "../transport/node_socket_stream.ts";
import { encodeBase64 } from "../codec/base64.ts";
import { encodeMessage, errorMessage } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { DeviceTokenKey } from "../crypto/device_token.ts";
import type { ServerIdentity } from "../crypto/server_identity.ts";
import type { UserStore } from "../store/user_store.ts";
import { raceTimeout } from "../transport/race_timeout.ts";
import type { ByteStream } from "../transport/byte_stream.ts";
import type { Logger } from "./logger.ts";
import { serveConnection } from "./serve_connection.ts";
import type { ServerConfig } from "./server_config.ts";
import type { ConnectionInfo, SessionContext, TransportName } from "./session_context.ts";
import { SessionRecheck } from "./session_recheck.ts";
import type { RecheckResult } from "./session_recheck.ts";
import { SessionRegistry } from "./session_registry.ts";
import type { Refusal } from "./session_registry.ts";
import type { SharedParts } from "./shared_parts.ts";
import type { Rendezvous } from "./udp_rendezvous.ts";
import { listenErrorFrom } from "./listen_error.ts";
import type { ListenTarget } from "./listen_error.ts";
import { connectionCap, countFreeDescriptors, defaultConnectionCap, probeBound } from "./descriptor_limit.ts";
import type { FreeDescriptors } from "./descriptor_limit.ts";
import { AcceptBackoff } from "./_accept_backoff.ts";
import { ProxyHeaders } from "./_proxy_headers.ts";
import { TrustedProxies } from "./trusted_proxies.ts";
import type { UdpEstablished } from "./udp_sessions.ts";
import type { UdpSessionStats } from "./udp_session_stats.ts";
import { UdpPort } from "./_udp_port.ts";

/** What a server runs with. */
export interface AuthchatServerOptions {
  /** Resolved configuration. */
  config: ServerConfig;
  /** Keys and certificate. */
  identity: ServerIdentity;
  /** Account store; closed by {@linkcode AuthchatServer.shutdown}. */
  store: UserStore;
  /** Event log. */
  log: Logger;
  /**
   * Presence, the abuse limits, the other nodes' sessions and the relay's routing: `localSharedParts(config)`
   * for a server alone, a bus's for one node of several. Not closed by the server.
   */
  parts: SharedParts;
  /**
   * The descriptors this process can still open, when the caller found them (tests); by default they are
   * counted at start ({@linkcode countFreeDescriptors}), for the default cap on connections and the log.
   */
  descriptors?: FreeDescriptors;
}

/** The bound address of each transport that is on. */
export type ListeningAddresses = Partial<Record<TransportName, Deno.NetAddr>>;

function formatAddress(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}

/** Open a listener; a bind error the configuration can fix becomes a {@linkcode ListenError} naming the key. */
async function bind<T>(
  config: ServerConfig,
  key: Exclude<ListenTarget["key"], "metrics_port">,
  open: () => T | Promise<T>,
): Promise<T> {
  try {
    return await open();
  } catch (err) {
    throw listenErrorFrom(err, { key, host: config.host, port: config[key] }) ?? err;
  }
}

/**
 * The cap on connections: `max_connections`, or what the free descriptors allow. Logged in one line (the
 * cap, the descriptors and how they were found), with a warning when a configured cap is above what the
 * descriptors allow.
 */
function resolveConnectionCap(config: ServerConfig, log: Logger, found?: FreeDescriptors): number {
  const descriptors = found ?? countFreeDescriptors({ bound: probeBound(config.max_connections) });
  const { cap, configured, exceedsDescriptors } = connectionCap(config.max_connections, descriptors);
  const fields = {
    max_connections: cap,
    configured: configured || undefined,
    free_descriptors: descriptors.free,
    at_least: descriptors.atLeast || undefined,
    descriptor_limit: descriptors.limit,
    found: descriptors.found,
  };
  log.always("info", "connection_cap", fields);
  if (exceedsDescriptors) {
    log.always("warn", "connection_cap_above_descriptors", {
      max_connections: cap,
      free_descriptors: descriptors.free,
      found: descriptors.found,
      advice:
        `accepts will fail before the cap is reached: raise the limit (ulimit -n) or set max_connections ` +
        `at most ${defaultConnectionCap(descriptors.free)} (or 0, the default, to derive it)`,
    });
  }
  return cap;
}

/**
 * Unknown users get mock exchanges with the configured iteration count, so an account whose verifier
 * uses another count can be told apart from a name with no account. Say so at start.
 */
async function warnOnIterationMismatch(store: UserStore, configured: number, log: Logger): Promise<void> {
  const others = [...await store.iterationCounts()].filter(([iterations]) => iterations !== configured);
  if (others.length === 0) return;
  log.warn("iteration_mismatch", {
    configured,
    accounts: others.reduce((n, [, count]) => n + count, 0),
    found: others.map(([iterations, count]) => `${count}x${iterations}`).join(","),
    advice: "these accounts are distinguishable from unknown users until their passwords change",
  });
}

/**
 * A running server.
 *
 * @example
 * ```ts ignore
 * const server = await AuthchatServer.start({ config, identity, store, log });
 * console.log(server.listeningLine);
 * await server.shutdown();
 * ```
 */
export class AuthchatServer {
  #ctx: SessionContext;
  #listeners: { name: TransportName; listener: Deno.Listener }[] = [];
  /** What listens on the TLS port: the TLS server, or before it the reader of PROXY headers. */
  #tlsListener: net.Server | null = null;
  /**
   * TLS connections still in their handshake, by the connection's own `address:port`, with the client's
   * address, and what to do when it is over either way.
   */
  #inHandshake = new Map<string, { socket: Socket; ip: string; done(): void }>();
  /** The PROXY headers of the balancers' connections (`proxy_protocol_from`), when there are balancers. */
  #proxies: ProxyHeaders | null = null;
  /** The client a balancer's TLS connection named, by its socket. */
  #proxiedTls = new WeakMap<Socket, string>();
  #connections = new Set<Promise<void>>();
  #accepting: Promise<void>[] = [];
  #stopping = false;
  #identity: ServerIdentity;
  /** The UDP socket, its rendezvous and UDP sessions, when `udp` is on. */
  #udp: UdpPort | null = null;
  /** Settles when the server starts stopping: ends the pauses of the accept loops. */
  #stopped = Promise.withResolvers<void>();
  #recheck: SessionRecheck;
  #recheckTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(ctx: SessionContext, identity: ServerIdentity) {
    this.#ctx = ctx;
    this.#identity = identity;
    this.#recheck = new SessionRecheck(ctx.registry, ctx.store, ctx.log);
  }

  /**
   * Bind the listeners and start serving.
   *
   * @param options Configuration, identity, store and log.
   * @returns The running server.
   * @throws {ListenError} For a port in use or needing privileges, an address this machine lacks or a name that
   *   does not resolve (naming the configuration key), after closing what was opened; other bind errors as
   *   they are.
   */
  static async start(options: AuthchatServerOptions): Promise<AuthchatServer> {
    const { config, identity, store, log, parts } = options;
    const maxConnections = resolveConnectionCap(config, log, options.descriptors);
    const mockSecret = await store.mockSecret();
    const ctx: SessionContext = {
      store,
      log,
      limits: parts.limits,
      sessions: parts.sessions,
      registry: new SessionRegistry({
        maxUnauthenticatedPerIp: config.max_unauthenticated_per_ip,
        maxConnectionsPerIp: config.max_connections_per_ip,
        maxConnections,
      }),
      presence: parts.presence,
      rendezvous: null,
      now: Date.now,
      serverName: config.name,
      iterations: config.scram_iterations,
      passwordMinLength: config.password_min_length,
      authTimeoutMs: config.auth_timeout * 1000,
      idleTimeoutMs: config.idle_timeout * 1000,
      keepaliveTimeoutMs: config.keepalive_timeout * 1000,
      sealPrivateKey: identity.sealPrivateKey,
      sealPublicKey: encodeBase64(identity.sealPublicDer),
      mockSecret,
      // Derived from the secret every node sharing the database has: they all accept each other's tokens.
      deviceTokens: await DeviceTokenKey.derive(mockSecret),
    };
    await warnOnIterationMismatch(store, config.scram_iterations, log);
    const registry = ctx.registry;
    const server = new AuthchatServer(ctx, identity);
    parts.sessions.serve({
      endUser: (key, code, reason) => registry.endUser(key, null, code, reason),
      endAll: (code, reason) => registry.endLoggedIn(code, reason),
      recheck: () => void server.recheckSessions(),
    });
    if (config.proxy_protocol_from !== null) {
      server.#proxies = new ProxyHeaders(TrustedProxies.parse(config.proxy_protocol_from), {
        // As long as a TLS handshake may take.
        timeoutMs: Math.min(config.auth_timeout, 10) * 1000,
        log,
      });
    }
    let udpSocket: Deno.DatagramConn | undefined;
    try {
      if (config.tcp) {
        server.#listeners.push({
          name: "tcp",
          listener: await bind(
            config,
            "tcp_port",
            () => Deno.listen({ hostname: config.host, port: config.tcp_port }),
          ),
        });
      }
      if (config.tls) {
        const { certPem, keyPem } = identity;
        if (!certPem || !keyPem) throw new TypeError("TLS is on but no certificate was loaded");
        server.#tlsListener = await bind(
          config,
          "tls_port",
          () => server.#listenTls(config, certPem, keyPem),
        );
      }
      if (config.udp) {
        udpSocket = await bind(
          config,
          "udp_port",
          () => Deno.listenDatagram({ hostname: config.host, port: config.udp_port, transport: "udp" }),
        );
        server.#udp = await UdpPort.open(udpSocket, {
          config,
          identity,
          mockSecret,
          ...(parts.relay ? { relay: parts.relay } : {}),
          log,
          onEstablished: (session) => server.#track(server.#handleUdp(session)),
        });
        ctx.rendezvous = server.#udp.rendezvous;
      }
    } catch (err) {
      for (const { listener } of server.#listeners) listener.close();
      server.#tlsListener?.close();
      udpSocket?.close();
      throw err;
    }
    for (const entry of server.#listeners) {
      server.#accepting.push(server.#acceptLoop(entry.name, entry.listener));
    }
    // One timer for every session: the safety net under PASSWD and DELETE (session_recheck.ts).
    server.#recheckTimer = setInterval(() => void server.recheckSessions(), config.session_recheck * 1000);
    server.#udp?.start();
    return server;
  }

  /** The bound addresses. */
  get addresses(): ListeningAddresses {
    const bound: [TransportName, Deno.NetAddr][] = this.#listeners.map((
      { name, listener },
    ) => [name, listener.addr as Deno.NetAddr]);
    const tlsAddress = this.#tlsListener?.address();
    if (tlsAddress && typeof tlsAddress === "object") {
      bound.push(["tls", { transport: "tcp", hostname: tlsAddress.address, port: tlsAddress.port }]);
    }
    if (this.#udp) bound.push(["udp", this.#udp.address]);
    return Object.fromEntries(bound);
  }

  /** The one line printed when ready: `authchat listening tcp=HOST:PORT tls=HOST:PORT udp=HOST:PORT`. */
  get listeningLine(): string {
    return "authchat listening " +
      Object.entries(this.addresses).map(([name, addr]) => `${name}=${formatAddress(addr)}`).join(" ");
  }

  /** The UDP rendezvous, when UDP is on (for tests and logs). */
  get rendezvous(): Rendezvous | null {
    return this.#udp?.rendezvous ?? null;
  }

  /** The UDP sessions, when UDP sessions are on (for tests, logs and metrics). */
  get udpSessions(): { readonly stats: UdpSessionStats } | null {
    return this.#udp?.sessions ?? null;
  }

  /**
   * Re-check the logged-in sessions against the store now, as every `session_recheck` seconds and when the
   * node is back on the bus: those whose account changed its password or is gone end.
   *
   * @returns What the pass did.
   */
  recheckSessions(): Promise<RecheckResult> {
    return this.#recheck.run();
  }

  /** The live session registry (for tests and presence). */
  get registry(): SessionRegistry {
    return this.#ctx.registry;
  }

  async #acceptLoop(name: TransportName, listener: Deno.Listener): Promise<void> {
    const backoff = new AcceptBackoff();
    while (!this.#stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#stopping || err instanceof Deno.errors.BadResource) return;
        // Out of descriptors (EMFILE), every accept fails at once, whether a connection waits or not (Linux
        // takes the descriptor before it looks for one; a waiting connection stays queued in the kernel):
        // pause, so the loop does not spin and the sessions already open keep being served meanwhile.
        // Nothing is shed here: an accept that fails cannot tell whether anyone is waiting, and shedding
        // at every failure would close the connections not logged in one by one for nobody. The cap, kept
        // below the descriptors, is what makes room.
        const pauseMs = backoff.failed();
        this.#ctx.log.warn("accept_failed", {
          transport: name,
          error: (err as Error).message,
          retry_ms: pauseMs,
        });
        await raceTimeout(this.#stopped.promise, pauseMs);
        continue;
      }
      backoff.succeeded();
      if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") conn.setNoDelay(true);
      const peer = (conn.remoteAddr as Deno.NetAddr).hostname;
      this.#track(
        this.#proxies?.expects(peer) ? this.#handleProxied(name, conn, peer) : this.#handle(name, conn, peer),
      );
    }
  }

  /** A balancer's connection: its PROXY header first, then the session, as the client it names. */
  async #handleProxied(name: TransportName, conn: Deno.Conn, proxy: string): Promise<void> {
    const client = await this.#proxies!.fromConn(conn, proxy, name);
    if (client !== null) await this.#handle(name, conn, client);
  }

  /**
   * A connection to the TLS port with `proxy_protocol_from`: a balancer's hands its PROXY header to
   * {@linkcode ProxyHeaders} and only then its bytes to the TLS server; anyone else's goes there at once.
   */
  #tlsFront(server: tls.Server, socket: Socket): void {
    const peer = socket.remoteAddress ?? "";
    if (this.#stopping) return void socket.destroy();
    if (!this.#proxies!.expects(peer)) return void server.emit("connection", socket);
    void this.#proxies!.fromSocket(socket, peer, "tls").then((client) => {
      if (client === null) return;
      this.#proxiedTls.set(socket, client);
      server.emit("connection", socket);
    });
  }

  /**
   * Listen for TLS (behind the reader of PROXY headers when balancers are trusted); a bind error rejects
   * with the `node:net` error (its `code` says which).
   */
  async #listenTls(config: ServerConfig, cert: string, key: string): Promise<net.Server> {
    const server = tls.createServer({
      cert,
      key,
      // The handshake must end well before the login deadline that starts after it.
      handshakeTimeout: Math.min(config.auth_timeout, 10) * 1000,
    });
    server.on("connection", (socket: Socket) => {
      // A handshake holds no session yet, but counts against the caps as one not logged in (and may be shed
      // like one). Refused here, there is no TLS to say why in: the connection is just closed.
      const ip = this.#proxiedTls.get(socket) ?? socket.remoteAddress ?? "";
      if (this.#stopping) return void socket.destroy();
      const refusal = this.#ctx.registry.admit(ip);
      if (refusal !== null) {
        this.#logRefusal(ip, "tls", refusal);
        return void socket.destroy();
      }
      const release = this.#ctx.registry.hold(ip, (code) => {
        this.#ctx.log.info("ended", { ip, transport: "tls", handshake: true, code });
        socket.destroy();
      });
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      // A new connection from the same address and port before the old one's close event: the old one is
      // over, and its slot must not stay held.
      this.#inHandshake.get(key)?.done();
      const done = () => {
        if (this.#inHandshake.get(key)?.socket !== socket) return;
        this.#inHandshake.delete(key);
        release();
      };
      this.#inHandshake.set(key, { socket, ip, done });
      socket.once("close", done);
    });
    const handshakeOver = (socket: tls.TLSSocket) =>
      this.#inHandshake.get(`${socket.remoteAddress}:${socket.remotePort}`)?.done();
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const ip = this.#inHandshake.get(`${socket.remoteAddress}:${socket.remotePort}`)?.ip ??
        socket.remoteAddress ?? "";
      handshakeOver(socket);
      socket.setNoDelay(true);
      this.#track(this.#handle("tls", new NodeSocketStream(socket), ip));
    });
    // Failed handshakes (scanners, wrong protocols, the timeout) end their socket; nothing to tell anyone.
    server.on("tlsClientError", (_err: Error, socket: tls.TLSSocket) => {
      handshakeOver(socket);
      socket.destroy();
    });
    const listener = this.#proxies ? net.createServer((socket) => this.#tlsFront(server, socket)) : server;
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(config.tls_port, config.host, () => resolve());
    });
    return listener;
  }

  #track(work: Promise<void>): void {
    // One `then` with both callbacks, not `catch` and `finally`: it stays pending for the life of the
    // connection, and each link of a chain would be kept as long.
    const tracked: Promise<void> = work.then(
      () => void this.#connections.delete(tracked),
      (err) => {
        this.#connections.delete(tracked);
        this.#ctx.log.error("connection_error", { error: (err as Error).message });
      },
    );
    this.#connections.add(tracked);
  }

  /** Log a refused connection, saying which cap refused it. */
  #logRefusal(ip: string, transport: TransportName, refusal: Refusal): void {
    this.#ctx.log.warn("connection_refused", {
      ip,
      transport,
      code: "TOO_MANY_CONNECTIONS",
      cap: refusal.cap,
    });
  }

  /** An established UDP session: served as a connection, with the handshake's channel binding. */
  #handleUdp(session: UdpEstablished): Promise<void> {
    return this.#handle("udp", session.stream, session.peerAddress, {
      channelBinding: session.channelBinding,
      channelBindingType: session.channelBindingType,
    });
  }

  async #handle(
    name: TransportName,
    conn: ByteStream,
    peer: string,
    binding?: Pick<ConnectionInfo, "channelBinding" | "channelBindingType">,
  ): Promise<void> {
    if (this.#stopping) return conn.close();
    const refusal = this.#ctx.registry.admit(peer);
    if (refusal !== null) {
      this.#logRefusal(peer, name, refusal);
      const err = new ProtocolError("TOO_MANY_CONNECTIONS", refusal.message, { fatal: true });
      await raceTimeout(conn.write(encodeMessage(errorMessage(err))), 1000);
      return conn.close();
    }
    const secure = name === "tls";
    // Returned, not awaited: this function is then done, rather than suspended for the life of the
    // connection (a server holds thousands, and each suspended call keeps its frame).
    return serveConnection(conn, {
      peerAddress: peer,
      transport: name,
      confidential: secure || binding !== undefined,
      ...(secure && this.#identity.channelBinding ? { channelBinding: this.#identity.channelBinding } : {}),
      ...binding,
    }, this.#ctx);
  }

  /**
   * Stop: close the listeners, send every session `BYE`, wait for connections
   * to close (at most `graceMs`), then close the store.
   *
   * @param graceMs Longest wait for connections.
   */
  async shutdown(graceMs = 1500): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopped.resolve();
    clearInterval(this.#recheckTimer);
    // The UDP socket stays open while UDP sessions say goodbye (below), unless there are none.
    this.#udp?.stop();
    for (const closable of this.#listeners.map((l) => l.listener)) {
      try {
        closable.close();
      } catch {
        // Already closed.
      }
    }
    this.#tlsListener?.close();
    // Connections still in their handshake, or before it in their PROXY header, have no session to say
    // goodbye to.
    for (const { socket } of this.#inHandshake.values()) socket.destroy();
    this.#proxies?.stop();
    await Promise.all(this.#accepting);
    this.#ctx.presence.quiet();
    this.#ctx.registry.endAll("SHUTDOWN", "Server shutting down");
    // A UDP session's stream outlives its connection a little: until its last bytes (the BYE) are
    // acknowledged.
    const sessions = this.#udp?.sessions;
    await raceTimeout(Promise.all([...this.#connections]).then(() => sessions?.drained()), graceMs);
    await this.#udp?.close();
    await this.#ctx.store.close();
    // What the log left out, then the stop lines, which are never left out. What the UDP side dropped and
    // why: the counters a flood or an attack shows up in.
    this.#ctx.log.flushSuppressed();
    if (this.#udp) this.#ctx.log.always("info", "udp_stats", this.#udp.statsFields);
    this.#ctx.log.always("info", "shutdown", { sessions_left: this.#ctx.registry.size });
  }
}
