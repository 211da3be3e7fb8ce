/**
 * A small metrics registry: counters that parts of the server count into,
 * and metrics read at each scrape from state that exists anyway (the session
 * registry, the UDP rendezvous's counters). It renders the Prometheus text
 * format (prometheus_text.ts).
 *
 * Label values must come from fixed sets (codes, transports, reasons), never
 * from a client: each distinct set of values is a series kept until the process
 * ends. As a backstop, a counter keeps at most {@linkcode MAX_SERIES} series;
 * increments of further ones are dropped and counted
 * ({@linkcode Metrics.droppedSeries}).
 *
 * @module
 */

import { formatExposition, isLabelName, isMetricName } from "./prometheus_text.ts";
import type { Labels, MetricFamily, MetricType, Sample } from "./prometheus_text.ts";

export type { Labels } from "./prometheus_text.ts";

/**
 * What a part of the server counts into: a store its database errors, a bus its errors, presence its
 * notices. The names and labels are the registry's (declared with {@linkcode Metrics.counter}).
 */
export interface Counters {
  /**
   * Add to a counter.
   *
   * @param name The counter's name.
   * @param labels A value for each of its label names, from a fixed set (none when it has none).
   * @param by How much (default 1).
   * @throws {TypeError} When no counter has the name, or the labels are not its label names (checked when
   *   a series is first counted: a known one is found by its values alone, as counting is on hot paths).
   * @throws {RangeError} When `by` is negative or not finite.
   */
  inc(name: string, labels?: Labels, by?: number): void;
}

/** Most series one counter keeps. */
export const MAX_SERIES = 1000;

/** Options of {@linkcode Metrics.counter}. */
export interface CounterOptions {
  /** Its label names (default none). */
  labels?: readonly string[];
  /**
   * Series shown at 0 before anything is counted, so a rate over them works from the start (a counter
   * without labels always shows its one series).
   */
  known?: readonly Labels[];
}

interface CounterFamily {
  type: "counter";
  help: string;
  labelNames: readonly string[];
  series: Map<string, { labels: Labels; value: number }>;
}

interface CollectedFamily {
  type: MetricType;
  help: string;
  collect: () => Iterable<Sample>;
}

/**
 * The registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Metrics } from "./metrics.ts";
 * const metrics = new Metrics()
 *   .counter("logins_total", "Logins by result.", { labels: ["result"] })
 *   .collected("sessions", "Sessions open now.", "gauge", () => [{ value: 2 }]);
 * metrics.inc("logins_total", { result: "ok" });
 * assert(metrics.value("logins_total", { result: "ok" }) === 1);
 * assert(metrics.render().includes("\nsessions 2\n"));
 * ```
 */
export class Metrics implements Counters {
  #families = new Map<string, CounterFamily | CollectedFamily>();
  #dropped = 0;

  /**
   * Declare a counter.
   *
   * @param name Its name (ending in `_total`, by convention).
   * @param help One line saying what it counts.
   * @param options Its label names, and the series to show at 0.
   * @returns This registry.
   * @throws {TypeError} For an invalid or taken name, or an invalid label name.
   */
  counter(name: string, help: string, options: CounterOptions = {}): this {
    const labelNames = options.labels ?? [];
    this.#declare(name);
    for (const label of labelNames) {
      if (!isLabelName(label)) throw new TypeError(`Invalid label name of ${name}: ${JSON.stringify(label)}`);
    }
    const family: CounterFamily = { type: "counter", help, labelNames, series: new Map() };
    this.#families.set(name, family);
    for (const labels of labelNames.length === 0 ? [{}] : options.known ?? []) {
      this.#series(name, family, labels);
    }
    return this;
  }

  /**
   * Declare a metric whose samples are read at each scrape (a gauge of state that exists anyway, or a
   * counter another object keeps).
   *
   * @param name Its name.
   * @param help One line saying what it is.
   * @param type Counter or gauge.
   * @param collect Its samples now; called once per render.
   * @returns This registry.
   * @throws {TypeError} For an invalid or taken name.
   */
  collected(name: string, help: string, type: MetricType, collect: () => Iterable<Sample>): this {
    this.#declare(name);
    this.#families.set(name, { type, help, collect });
    return this;
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const family = this.#families.get(name);
    if (family?.type !== "counter" || !("series" in family)) {
      throw new TypeError(`No counter named ${name}`);
    }
    if (!(by >= 0) || !Number.isFinite(by)) throw new RangeError(`Invalid increment of ${name}: ${by}`);
    const entry = this.#series(name, family, labels);
    if (entry) entry.value += by;
  }

  /**
   * A counter's value now (for tests and logs).
   *
   * @param name The counter's name.
   * @param labels Its labels.
   * @returns The value (0 for a series not counted yet).
   * @throws {TypeError} When no counter has the name, or the labels are not its label names.
   */
  value(name: string, labels: Labels = {}): number {
    const family = this.#families.get(name);
    if (family?.type !== "counter" || !("series" in family)) {
      throw new TypeError(`No counter named ${name}`);
    }
    this.#check(name, family, labels);
    return family.series.get(this.#key(family, labels))?.value ?? 0;
  }

  /** Increments dropped because their counter had {@linkcode MAX_SERIES} series already. */
  get droppedSeries(): number {
    return this.#dropped;
  }

  /**
   * Every metric with its samples now, in the order declared.
   *
   * @returns The families.
   */
  families(): MetricFamily[] {
    return [...this.#families].map(([name, family]) => ({
      name,
      help: family.help,
      type: family.type,
      samples: "series" in family ? [...family.series.values()] : [...family.collect()],
    }));
  }

  /**
   * The text format of every metric now.
   *
   * @returns The text.
   * @throws What a collect function throws.
   */
  render(): string {
    return formatExposition(this.families());
  }

  #declare(name: string): void {
    if (!isMetricName(name)) throw new TypeError(`Invalid metric name: ${JSON.stringify(name)}`);
    if (this.#families.has(name)) throw new TypeError(`Metric declared twice: ${name}`);
  }

  /** Refuse labels that are not exactly the family's label names, with string values. */
  #check(name: string, family: CounterFamily, labels: Labels): void {
    const given = Object.keys(labels);
    if (
      given.length !== family.labelNames.length ||
      !family.labelNames.every((l) => Object.hasOwn(labels, l) && typeof labels[l] === "string")
    ) {
      throw new TypeError(
        `Labels of ${name} must be [${family.labelNames.join(", ")}]: got [${given.join(", ")}]`,
      );
    }
  }

  /**
   * The series key: the value itself for one label (most counters have at most one), else the values as
   * JSON. Counting is on hot paths (a presence notice per session told), so this is all a known series
   * costs; the labels are checked in full when a series is made.
   */
  #key(family: CounterFamily, labels: Labels): string {
    const names = family.labelNames;
    if (names.length === 0) return "";
    if (names.length === 1) return labels[names[0]!] ?? "\u0000missing";
    return JSON.stringify(names.map((l) => labels[l] ?? null));
  }

  #series(name: string, family: CounterFamily, labels: Labels): { labels: Labels; value: number } | null {
    const key = this.#key(family, labels);
    let entry = family.series.get(key);
    if (!entry) {
      this.#check(name, family, labels);
      if (family.series.size >= MAX_SERIES) {
        this.#dropped++;
        return null;
      }
      // In the declared order, whatever order the caller wrote them in.
      const ordered = Object.fromEntries(family.labelNames.map((l) => [l, labels[l]!]));
      entry = { labels: ordered, value: 0 };
      family.series.set(key, entry);
    }
    return entry;
  }
}
