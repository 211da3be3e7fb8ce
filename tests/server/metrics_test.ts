import assert from "node:assert/strict";
import { MAX_SERIES, Metrics } from "../../lib/server/metrics.ts";
import { parseExposition, sampleValue } from "./_parse_exposition.ts";

Deno.test("Metrics counts by labels in the declared order, and shows known series at 0", () => {
  const metrics = new Metrics()
    .counter("requests_total", "Requests.", { labels: ["op", "code"], known: [{ op: "login", code: "OK" }] })
    .counter("plain_total", "No labels.");
  metrics.inc("requests_total", { code: "AUTH_FAILED", op: "login" });
  metrics.inc("requests_total", { op: "login", code: "AUTH_FAILED" }, 2);
  assert.equal(metrics.value("requests_total", { op: "login", code: "AUTH_FAILED" }), 3);
  assert.equal(metrics.value("requests_total", { op: "login", code: "OK" }), 0);
  assert.equal(metrics.value("requests_total", { op: "register", code: "OK" }), 0);
  const text = metrics.render();
  assert.match(text, /^requests_total\{op="login",code="AUTH_FAILED"\} 3$/m, "labels in the declared order");
  assert.match(text, /^requests_total\{op="login",code="OK"\} 0$/m);
  assert.match(text, /^plain_total 0$/m, "a counter without labels shows its series from the start");
  const parsed = parseExposition(text);
  assert.equal(parsed.get("requests_total")!.type, "counter");
  assert.equal(sampleValue(parsed, "requests_total", { op: "login", code: "AUTH_FAILED" }), 3);
});

Deno.test("Metrics reads collected metrics at each render", () => {
  let sessions = 1;
  const metrics = new Metrics().collected("sessions", "Sessions.", "gauge", () => [
    { labels: { transport: "tcp" }, value: sessions },
  ]);
  assert.equal(sampleValue(parseExposition(metrics.render()), "sessions", { transport: "tcp" }), 1);
  sessions = 5;
  assert.equal(sampleValue(parseExposition(metrics.render()), "sessions", { transport: "tcp" }), 5);
  assert.throws(
    () => metrics.inc("sessions"),
    /No counter named sessions/,
    "a collected metric is not counted into",
  );
});

Deno.test("Metrics refuses undeclared counters, wrong labels, bad increments and a name declared twice", () => {
  const metrics = new Metrics().counter("a_total", "A.", { labels: ["op"] });
  assert.throws(() => metrics.inc("b_total"), /No counter named b_total/);
  assert.throws(() => metrics.inc("a_total"), /Labels of a_total must be \[op\]: got \[\]/);
  assert.throws(() => metrics.inc("a_total", { op: "x", extra: "y" }), TypeError);
  assert.throws(() => metrics.inc("a_total", { other: "x" }), TypeError);
  assert.throws(() => metrics.inc("a_total", { op: "x" }, -1), RangeError);
  assert.throws(() => metrics.inc("a_total", { op: "x" }, NaN), RangeError);
  assert.throws(() => metrics.inc("a_total", { op: "x" }, Infinity), RangeError);
  assert.throws(() => metrics.counter("a_total", "Again."), /declared twice/);
  assert.throws(() => metrics.counter("bad name", "Bad."), /Invalid metric name/);
  assert.throws(() => metrics.counter("c_total", "C.", { labels: ["bad-label"] }), /Invalid label name/);
  assert.equal(metrics.value("a_total", { op: "x" }), 0, "nothing refused was counted");
});

Deno.test("Metrics keeps at most MAX_SERIES series per counter and counts what it drops", () => {
  const metrics = new Metrics().counter("many_total", "Many.", { labels: ["v"] });
  for (let i = 0; i < MAX_SERIES + 10; i++) metrics.inc("many_total", { v: String(i) });
  metrics.inc("many_total", { v: "0" });
  assert.equal(metrics.droppedSeries, 10);
  assert.equal(metrics.value("many_total", { v: "0" }), 2, "series kept still count");
  assert.equal(metrics.value("many_total", { v: String(MAX_SERIES + 1) }), 0);
  assert.equal(parseExposition(metrics.render()).get("many_total")!.samples.length, MAX_SERIES);
});
