import assert from "node:assert/strict";
import fc from "fast-check";
import {
  escapeHelp,
  escapeLabelValue,
  formatExposition,
  formatValue,
  isLabelName,
  isMetricName,
} from "../../lib/server/prometheus_text.ts";
import type { MetricFamily } from "../../lib/server/prometheus_text.ts";
import { parseExposition } from "./_parse_exposition.ts";

Deno.test("formatExposition writes HELP and TYPE before each family's samples", () => {
  const text = formatExposition([
    { name: "a_total", help: "A.", type: "counter", samples: [{ value: 1 }] },
    {
      name: "b",
      help: "B.",
      type: "gauge",
      samples: [{ labels: { x: "1" }, value: 2 }, { labels: { x: "2" }, value: 3 }],
    },
    { name: "c", help: "C, none yet.", type: "gauge", samples: [] },
  ]);
  assert.equal(
    text,
    [
      "# HELP a_total A.",
      "# TYPE a_total counter",
      "a_total 1",
      "# HELP b B.",
      "# TYPE b gauge",
      'b{x="1"} 2',
      'b{x="2"} 3',
      "# HELP c C, none yet.",
      "# TYPE c gauge",
      "",
    ].join("\n"),
  );
  const parsed = parseExposition(text);
  assert.deepEqual([...parsed.keys()], ["a_total", "b", "c"]);
  assert.equal(parsed.get("b")!.type, "gauge");
  assert.deepEqual(parsed.get("b")!.samples, [{ labels: { x: "1" }, value: 2 }, {
    labels: { x: "2" },
    value: 3,
  }]);
});

Deno.test("formatExposition escapes backslash, double quote and line feed in label values", () => {
  const value = 'C:\\dir "quoted"\nnext line';
  const text = formatExposition([
    {
      name: "m",
      help: "Help with \\ and\na line feed.",
      type: "gauge",
      samples: [{ labels: { v: value }, value: 1 }],
    },
  ]);
  assert.equal(text.split("\n").length, 4, "no raw line feed is left in any line");
  assert.match(text, /^# HELP m Help with \\\\ and\\na line feed\.$/m);
  assert.match(text, /^m\{v="C:\\\\dir \\"quoted\\"\\nnext line"\} 1$/m);
  const parsed = parseExposition(text).get("m")!;
  assert.equal(parsed.help, "Help with \\ and\na line feed.");
  assert.equal(parsed.samples[0]!.labels.v, value);
});

Deno.test("formatExposition round-trips any label value and help text through a strict parser", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary" }),
      fc.array(fc.string({ unit: "binary" }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constant(NaN)), {
        minLength: 4,
        maxLength: 4,
      }),
      (help, values, numbers) => {
        const family: MetricFamily = {
          name: "prop_metric",
          help,
          type: "gauge",
          samples: values.map((v, i) => ({ labels: { v, i: String(i) }, value: numbers[i]! })),
        };
        const parsed = parseExposition(formatExposition([family])).get("prop_metric")!;
        assert.equal(parsed.help, help);
        assert.deepEqual(parsed.samples.map((s) => s.labels.v), values);
        parsed.samples.forEach((s, i) => assert.ok(Object.is(s.value, numbers[i]) || s.value === numbers[i]));
      },
    ),
  );
});

Deno.test("formatValue names NaN and the infinities as the format does", () => {
  assert.deepEqual([NaN, Infinity, -Infinity, 0, 1.5, -2].map(formatValue), [
    "NaN",
    "+Inf",
    "-Inf",
    "0",
    "1.5",
    "-2",
  ]);
});

Deno.test("formatExposition refuses invalid names and a family named twice", () => {
  const family = (name: string, labels = {}): MetricFamily => ({
    name,
    help: "x",
    type: "gauge",
    samples: [{ labels, value: 1 }],
  });
  assert.throws(() => formatExposition([family("1bad")]), TypeError);
  assert.throws(() => formatExposition([family("bad-name")]), TypeError);
  assert.throws(() => formatExposition([family("ok", { "bad-label": "x" })]), TypeError);
  assert.throws(() => formatExposition([family("ok", { __reserved: "x" })]), TypeError);
  assert.throws(() => formatExposition([family("twice"), family("twice")]), /Metric named twice: twice/);
  assert.equal(formatExposition([]), "");
  assert.ok(isMetricName("authchat:rule_total") && !isMetricName(""));
  assert.ok(isLabelName("op") && !isLabelName("__name__") && !isLabelName("9"));
});

Deno.test("escapeHelp leaves double quotes alone, escapeLabelValue does not", () => {
  assert.equal(escapeHelp('say "hi"'), 'say "hi"');
  assert.equal(escapeLabelValue('say "hi"'), 'say \\"hi\\"');
});
