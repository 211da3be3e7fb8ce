/**
 * The metrics port: a minimal HTTP/1.1 server for `GET /metrics` (the
 * Prometheus text format) and `GET /healthz` (200 or 503 with a line per
 * check), `HEAD` of either; other paths get 404, other methods 405.
 *
 * Written on a plain TCP listener rather than `Deno.serve`, because it must not
 * hurt the chat server it runs beside, and `Deno.serve` has no bound on how long
 * a client may take to send its request nor on how many connections it holds
 * (measured: a request left half-sent was still open after 70 s). Here:
 * - one request per connection, answered with `Connection: close`;
 * - a connection has {@linkcode METRICS_DEADLINE_MS} in all to send its request
 *   and read the answer, and is closed then whatever it is doing;
 * - a request head over {@linkcode METRICS_MAX_HEAD_BYTES} gets 431;
 * - at most {@linkcode METRICS_MAX_CONNECTIONS} connections are open; a new one
 *   beyond that closes the oldest, so idle connections cannot lock a scrape out;
 * - a failed accept (out of descriptors) pauses the loop as the chat listeners'
 *   does, and nothing the listener meets is thrown out of it;
 * - `/metrics` is rendered at most once per {@linkcode METRICS_CACHE_MS}:
 *   a scrape within that time of the last render gets the same text, so
 *   scraping it hard costs the server no more than one render a second.
 *
 * @module
 */

import { AcceptBackoff } from "./_accept_backoff.ts";
import { formatHealthReport } from "./health_checks.ts";
import type { HealthReport } from "./health_checks.ts";
import { listenErrorFrom } from "./listen_error.ts";
import type { Logger } from "./logger.ts";
import { EXPOSITION_CONTENT_TYPE } from "./prometheus_text.ts";
import { raceTimeout } from "../transport/race_timeout.ts";

/** Longest a connection stays open, ms: to send its request and read the answer. */
export const METRICS_DEADLINE_MS = 5000;

/** Most bytes of a request head (request line and headers). */
export const METRICS_MAX_HEAD_BYTES = 8192;

/** Most connections open at once. */
export const METRICS_MAX_CONNECTIONS = 16;

/** How long a render of `/metrics` is served again, ms. */
export const METRICS_CACHE_MS = 1000;

/** Options of {@linkcode MetricsListener.listen}. */
export interface MetricsListenerOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port (0: any free port). */
  port: number;
  /** The `/metrics` body now. */
  metrics: () => string;
  /** The `/healthz` report now. */
  health: () => Promise<HealthReport>;
  /** Where accept failures and errors are logged. */
  log: Logger;
  /** Longest a connection stays open, ms (default {@linkcode METRICS_DEADLINE_MS}). */
  deadlineMs?: number;
  /** Most connections open at once (default {@linkcode METRICS_MAX_CONNECTIONS}). */
  maxConnections?: number;
  /** How long a render of `/metrics` is served again, ms (default {@linkcode METRICS_CACHE_MS}). */
  metricsCacheMs?: number;
  /** Monotonic clock, ms (default `performance.now`). */
  now?: () => number;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEAD_END = encoder.encode("\r\n\r\n");

function indexOfSequence(bytes: Uint8Array, length: number, sequence: Uint8Array): number {
  outer: for (let i = 0; i + sequence.length <= length; i++) {
    for (let j = 0; j < sequence.length; j++) if (bytes[i + j] !== sequence[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Read a request head: up to the blank line that ends it.
 *
 * @returns The head's text, `"too large"` past the cap, or `null` when the peer closed first.
 */
async function readHead(conn: Deno.Conn): Promise<string | "too large" | null> {
  const buffer = new Uint8Array(METRICS_MAX_HEAD_BYTES);
  let length = 0;
  while (length < buffer.length) {
    const n = await conn.read(buffer.subarray(length));
    if (n === null) return null;
    const from = Math.max(0, length - HEAD_END.length + 1);
    length += n;
    const end = indexOfSequence(buffer.subarray(from), length - from, HEAD_END);
    if (end >= 0) return decoder.decode(buffer.subarray(0, from + end));
  }
  return "too large";
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already (by the deadline, or at shutdown).
  }
}

/**
 * The metrics port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsListener } from "./metrics_listener.ts";
 * import { Logger } from "./logger.ts";
 * const listener = MetricsListener.listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   metrics: () => "up 1\n",
 *   health: () => Promise.resolve({ ok: true, checks: [] }),
 *   log: new Logger({ write: () => {} }),
 * });
 * const response = await fetch(`http://127.0.0.1:${listener.addr.port}/metrics`);
 * assert(response.status === 200 && await response.text() === "up 1\n");
 * await listener.close();
 * ```
 */
export class MetricsListener {
  #listener: Deno.Listener;
  #options: MetricsListenerOptions;
  #deadlineMs: number;
  #maxConnections: number;
  #metricsCacheMs: number;
  #now: () => number;
  /** The latest render of `/metrics`, and when it was made. */
  #rendered: { body: string; at: number } | null = null;
  /** Open connections, oldest first, and what ends each. */
  #open = new Map<Deno.Conn, Promise<void>>();
  #accepting: Promise<void>;
  #closing = false;
  #stopped = Promise.withResolvers<void>();

  private constructor(listener: Deno.Listener, options: MetricsListenerOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#deadlineMs = options.deadlineMs ?? METRICS_DEADLINE_MS;
    this.#maxConnections = options.maxConnections ?? METRICS_MAX_CONNECTIONS;
    this.#metricsCacheMs = options.metricsCacheMs ?? METRICS_CACHE_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Bind the port and start answering.
   *
   * @param options Where, what to answer, the log and the bounds.
   * @returns The listener.
   * @throws {ListenError} For a port in use or needing privileges (`metrics_port`), an address this machine
   *   lacks or a name that does not resolve (`metrics_host`); other bind errors as they are.
   */
  static listen(options: MetricsListenerOptions): MetricsListener {
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ hostname: options.hostname, port: options.port });
    } catch (err) {
      throw listenErrorFrom(err, { key: "metrics_port", host: options.hostname, port: options.port }) ?? err;
    }
    return new MetricsListener(listener, options);
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#open.size;
  }

  /** Stop: close the port and every connection, and wait until they are over. */
  async close(): Promise<void> {
    if (this.#closing) return await this.#accepting;
    this.#closing = true;
    this.#stopped.resolve();
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    for (const conn of this.#open.keys()) close(conn);
    await this.#accepting;
    await Promise.all(this.#open.values());
  }

  async #acceptLoop(): Promise<void> {
    const backoff = new AcceptBackoff();
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closing || err instanceof Deno.errors.BadResource) return;
        const pauseMs = backoff.failed();
        this.#options.log.warn("metrics_accept_failed", { error: (err as Error).message, retry_ms: pauseMs });
        await raceTimeout(this.#stopped.promise, pauseMs);
        continue;
      }
      backoff.succeeded();
      if (this.#open.size >= this.#maxConnections) {
        // The oldest has had the longest to send its request: a real scrape sends it at once.
        const [oldest] = this.#open.keys();
        if (oldest) close(oldest);
      }
      const done = this.#serve(conn).finally(() => this.#open.delete(conn));
      this.#open.set(conn, done);
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const timer = setTimeout(() => close(conn), this.#deadlineMs);
    try {
      const head = await readHead(conn);
      if (head === null) return;
      const reply = head === "too large"
        ? { status: 431, body: "Request head too large\n" }
        : await this.#answer(head);
      await writeAll(conn, this.#encode(reply, head !== "too large" && head.startsWith("HEAD ")));
      // Closed gracefully: told no more is coming, the peer reads the answer and closes; what it still
      // sends is read and dropped until then (or the deadline), so the close resets nothing unread.
      await conn.closeWrite();
      const sink = new Uint8Array(4096);
      while (await conn.read(sink) !== null);
    } catch {
      // The peer went away, or the deadline or the shutdown closed the connection.
    } finally {
      clearTimeout(timer);
      close(conn);
    }
  }

  async #answer(head: string): Promise<Reply> {
    const lineEnd = head.indexOf("\r\n");
    const match = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lineEnd < 0 ? head : head.slice(0, lineEnd));
    if (!match) return { status: 400, body: "Bad request\n" };
    const [, method, target] = match as unknown as [string, string, string];
    const path = target.split("?", 1)[0];
    if (path !== "/metrics" && path !== "/healthz") {
      return { status: 404, body: "Not found: the metrics port serves /metrics and /healthz\n" };
    }
    if (method !== "GET" && method !== "HEAD") {
      return { status: 405, headers: { Allow: "GET, HEAD" }, body: "Method not allowed: use GET\n" };
    }
    try {
      if (path === "/metrics") {
        return {
          status: 200,
          headers: { "Content-Type": EXPOSITION_CONTENT_TYPE },
          body: this.#render(),
        };
      }
      const report = await this.#options.health();
      return { status: report.ok ? 200 : 503, body: formatHealthReport(report) };
    } catch (err) {
      this.#options.log.error("metrics_error", { path, error: (err as Error)?.message ?? String(err) });
      return { status: 500, body: "Internal error\n" };
    }
  }

  /** The `/metrics` text: the latest render while it is recent enough, else a new one (a failure is not kept). */
  #render(): string {
    const now = this.#now();
    const last = this.#rendered;
    if (last && now - last.at < this.#metricsCacheMs) return last.body;
    const body = this.#options.metrics();
    this.#rendered = { body, at: now };
    return body;
  }

  #encode(reply: Reply, headOnly: boolean): Uint8Array {
    const body = encoder.encode(reply.body);
    const headers = {
      "Content-Type": "text/plain; charset=utf-8",
      ...reply.headers,
      "Content-Length": String(body.length),
      "Cache-Control": "no-store",
      Connection: "close",
    };
    const head = `HTTP/1.1 ${reply.status} ${REASONS[reply.status]}\r\n` +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") + "\r\n";
    const bytes = encoder.encode(head);
    if (headOnly) return bytes;
    const out = new Uint8Array(bytes.length + body.length);
    out.set(bytes);
    out.set(body, bytes.length);
    return out;
  }
}
