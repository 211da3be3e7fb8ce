import assert from "node:assert/strict";
import type { HealthReport } from "../../lib/server/health_checks.ts";
import { ListenError } from "../../lib/server/listen_error.ts";
import { Logger } from "../../lib/server/logger.ts";
import { METRICS_MAX_HEAD_BYTES, MetricsListener } from "../../lib/server/metrics_listener.ts";
import type { MetricsListenerOptions } from "../../lib/server/metrics_listener.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A listener on a free port with the given answers; lines logged are kept. */
function listen(
  options: Partial<MetricsListenerOptions> = {},
): { listener: MetricsListener; lines: string[] } {
  const lines: string[] = [];
  const listener = MetricsListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    metrics: () => "# HELP up Up.\n# TYPE up gauge\nup 1\n",
    health: () => Promise.resolve({ ok: true, checks: [{ name: "store", ok: true, detail: "ok" }] }),
    log: new Logger({ write: (line) => lines.push(line), now: () => 0 }),
    ...options,
  });
  return { listener, lines };
}

/** Send raw bytes, read until the server closes, return what it sent. */
async function exchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(typeof request === "string" ? encoder.encode(request) : request);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (let n; (n = await conn.read(buffer)) !== null;) chunks.push(buffer.slice(0, n));
    return decoder.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    conn.close();
  }
}

Deno.test("MetricsListener serves /metrics in the exposition format and /healthz, one request per connection", async () => {
  const { listener } = listen();
  try {
    const base = `http://127.0.0.1:${listener.addr.port}`;
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(metrics.headers.get("connection"), "close");
    assert.equal(await metrics.text(), "# HELP up Up.\n# TYPE up gauge\nup 1\n");
    const query = await fetch(`${base}/metrics?name[]=up`);
    assert.equal(query.status, 200, "a query string is ignored");
    await query.body?.cancel();
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "ok\nstore: ok\n");
    const head = await fetch(`${base}/healthz`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "13", "the length of the body a GET gets");
    assert.equal(await head.text(), "");
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener answers 503 with what failed when a check fails", async () => {
  const report: HealthReport = {
    ok: false,
    checks: [{ name: "store", ok: false, detail: "failed: Database closed" }],
  };
  const { listener } = listen({ health: () => Promise.resolve(report) });
  try {
    const response = await fetch(`http://127.0.0.1:${listener.addr.port}/healthz`);
    assert.equal(response.status, 503);
    assert.equal(await response.text(), "unhealthy\nstore: failed: Database closed\n");
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener answers other paths 404, other methods 405, garbage 400, a huge head 431", async () => {
  const { listener } = listen({ deadlineMs: 300 });
  const port = listener.addr.port;
  try {
    const notFound = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(notFound.status, 404);
    assert.match(await notFound.text(), /serves \/metrics and \/healthz/);
    const post = await fetch(`http://127.0.0.1:${port}/metrics`, {
      method: "POST",
      body: "x".repeat(100_000),
    });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
    assert.match(await exchange(port, "HELLO\r\n\r\n"), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(await exchange(port, "GET /metrics HTTP/2.0\r\n\r\n"), /^HTTP\/1\.1 400 /);
    const huge = `GET /metrics HTTP/1.1\r\nX: ${"a".repeat(METRICS_MAX_HEAD_BYTES)}\r\n\r\n`;
    assert.match(await exchange(port, huge), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(
      await exchange(port, "GET /metrics HTTP/1.0\r\n\r\n"),
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n# HELP up/,
    );
    assert.equal(
      await exchange(port, "GET /metr"),
      "",
      "half a request gets nothing, and is closed at the deadline",
    );
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener answers 500 and logs when the metrics cannot be read, and keeps serving", async () => {
  let broken = true;
  const { listener, lines } = listen({
    metrics: () => {
      if (broken) throw new Error("collector failed");
      return "up 1\n";
    },
  });
  try {
    const response = await fetch(`http://127.0.0.1:${listener.addr.port}/metrics`);
    assert.equal(response.status, 500);
    await response.body?.cancel();
    assert.match(lines.join("\n"), /ERROR metrics_error path=\/metrics error="collector failed"/);
    broken = false;
    assert.equal(await (await fetch(`http://127.0.0.1:${listener.addr.port}/metrics`)).text(), "up 1\n");
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener renders /metrics at most once per metricsCacheMs, however often it is scraped", async () => {
  let clock = 0;
  let renders = 0;
  const { listener } = listen({
    metrics: () => `up ${++renders}\n`,
    now: () => clock,
    metricsCacheMs: 1000,
  });
  try {
    const scrape = async (method = "GET") => {
      const response = await fetch(`http://127.0.0.1:${listener.addr.port}/metrics`, { method });
      return response.status === 200 ? await response.text() : `status ${response.status}`;
    };
    const bodies = await Promise.all([scrape(), scrape(), scrape(), scrape("HEAD")]);
    assert.deepEqual(bodies, ["up 1\n", "up 1\n", "up 1\n", ""]);
    clock = 999;
    assert.equal(await scrape(), "up 1\n", "the same text within the time");
    assert.equal(renders, 1);
    clock = 1000;
    assert.equal(await scrape(), "up 2\n", "rendered again after it");
    assert.equal(await scrape(), "up 2\n");
    assert.equal(renders, 2);
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener closes a connection that has not finished by the deadline", async () => {
  const { listener } = listen({ deadlineMs: 50 });
  try {
    // Half a request, then nothing: the server hangs up by itself.
    assert.equal(await exchange(listener.addr.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"), "");
    assert.equal(listener.connections, 0);
  } finally {
    await listener.close();
  }
});

Deno.test("MetricsListener closes a connection that does not read its answer by the deadline", async () => {
  const big = "x".repeat(32 << 20);
  const { listener } = listen({ deadlineMs: 1000, metrics: () => big });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  try {
    await conn.write(encoder.encode("GET /metrics HTTP/1.1\r\n\r\n"));
    // More than the sockets' buffers hold: the write waits for a reader that never comes.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(listener.connections, 1, "still writing");
    for (let i = 0; i < 100 && listener.connections > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(listener.connections, 0, "closed at the deadline");
  } finally {
    conn.close();
    await listener.close();
  }
});

Deno.test("MetricsListener closes its oldest connection for a new one at its cap, so idle ones cannot lock a scrape out", async () => {
  const { listener } = listen({ maxConnections: 4 });
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    }
    const response = await fetch(`http://127.0.0.1:${listener.addr.port}/metrics`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^up 1$/m);
    assert.ok(listener.connections <= 4, `${listener.connections} connections open`);
    // The first idle connections were closed by the server: reading them ends at once.
    assert.equal(await idle[0]!.read(new Uint8Array(1)), null);
  } finally {
    for (const conn of idle) conn.close();
    await listener.close();
  }
});

Deno.test("MetricsListener.close closes the port and every connection still open", async () => {
  const { listener } = listen();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  try {
    await listener.close();
    assert.equal(await conn.read(new Uint8Array(1)), null, "the open connection was closed");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      Deno.errors.ConnectionRefused,
    );
    await listener.close();
  } finally {
    conn.close();
  }
});

Deno.test("MetricsListener.listen names metrics_port when the port is taken, metrics_host when the address is not this machine's", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () => listen({ port: taken.addr.port }),
      (err) =>
        err instanceof ListenError && err.key === "metrics_port" &&
        /for metrics_port: address already in use .*--metrics-port or metrics_port in the config/.test(
          err.message,
        ),
    );
  } finally {
    taken.close();
  }
  assert.throws(
    () => listen({ hostname: "192.0.2.1" }),
    (err) => err instanceof ListenError && err.key === "metrics_host" && /--metrics-host/.test(err.message),
  );
});
