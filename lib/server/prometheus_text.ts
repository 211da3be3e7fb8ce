/**
 * The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE`
 * lines, then one sample per line, label values escaped. Hand-written rather
 * than from `npm:prom-client`: that package runs under Deno, but loading it
 * costs about 5 MB resident and 50 ms at start (measured beside the server's
 * own imports) and four packages, for a format of a few lines.
 *
 * See https://prometheus.io/docs/instrumenting/exposition_formats/.
 *
 * @module
 */

/** The `Content-Type` of a response in this format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The kinds of metric this server exposes. */
export type MetricType = "counter" | "gauge";

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** One value of a metric, with its labels. */
export interface Sample {
  /** Labels (none: the metric's only sample). */
  labels?: Labels;
  /** The value. */
  value: number;
}

/** A metric: its name, help text, type and samples. */
export interface MetricFamily {
  /** Name, `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  name: string;
  /** One line of help; backslashes and line breaks are escaped. */
  help: string;
  /** Counter or gauge. */
  type: MetricType;
  /** Its samples (none: only the HELP and TYPE lines are written). */
  samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Whether a text is a valid metric name.
 *
 * @param name The name.
 * @returns `true` when Prometheus accepts it.
 */
export function isMetricName(name: string): boolean {
  return METRIC_NAME.test(name);
}

/**
 * Whether a text is a valid label name (names starting with `__` are Prometheus's own).
 *
 * @param name The name.
 * @returns `true` when Prometheus accepts it.
 */
export function isLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith("__");
}

/**
 * Escape a label value: backslash, double quote and line feed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeLabelValue } from "./prometheus_text.ts";
 * assert(escapeLabelValue('a"b\\c\nd') === 'a\\"b\\\\c\\nd');
 * ```
 *
 * @param value The value.
 * @returns The text between the quotes.
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/**
 * Escape a help text: backslash and line feed.
 *
 * @param help The text.
 * @returns The text after `# HELP name `.
 */
export function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/**
 * A sample value as the format writes it: `NaN`, `+Inf` and `-Inf` by name, others as numbers.
 *
 * @param value The value.
 * @returns Its text.
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/**
 * Write metrics in the text format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatExposition } from "./prometheus_text.ts";
 * const text = formatExposition([{
 *   name: "logins_total",
 *   help: "Logins.",
 *   type: "counter",
 *   samples: [{ labels: { result: "ok" }, value: 3 }],
 * }]);
 * assert(text === '# HELP logins_total Logins.\n# TYPE logins_total counter\nlogins_total{result="ok"} 3\n');
 * ```
 *
 * @param families The metrics, each name once.
 * @returns The text, ending with a line feed (empty for no metrics).
 * @throws {TypeError} For an invalid metric or label name, or a name given twice.
 */
export function formatExposition(families: Iterable<MetricFamily>): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const { name, help, type, samples } of families) {
    if (!isMetricName(name)) throw new TypeError(`Invalid metric name: ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new TypeError(`Metric named twice: ${name}`);
    seen.add(name);
    lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const { labels, value } of samples) {
      for (const label of Object.keys(labels ?? {})) {
        if (!isLabelName(label)) {
          throw new TypeError(`Invalid label name of ${name}: ${JSON.stringify(label)}`);
        }
      }
      lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    }
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}
