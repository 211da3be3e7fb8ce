import assert from "node:assert/strict";
import { DUPLICATE_WINDOW_MS, SignalTally, STOP_SIGNALS, StopSignals } from "../../cmd/_stop_signals.ts";
import type { SignalHost } from "../../cmd/_stop_signals.ts";
import { Logger } from "../../lib/server/logger.ts";

/** A process whose signals, clock, stderr and exit a test drives. */
class FakeHost implements SignalHost {
  handlers = new Map<Deno.Signal, Set<() => void>>();
  clock = 0;
  errors: string[] = [];
  exits: number[] = [];

  addSignalListener(signal: Deno.Signal, handler: () => void): void {
    if (!this.handlers.has(signal)) this.handlers.set(signal, new Set());
    this.handlers.get(signal)!.add(handler);
  }
  removeSignalListener(signal: Deno.Signal, handler: () => void): void {
    this.handlers.get(signal)?.delete(handler);
  }
  now(): number {
    return this.clock;
  }
  stderr(line: string): void {
    this.errors.push(line);
  }
  exit(code: number): void {
    this.exits.push(code);
  }
  /** Deliver a signal at a time; throws when nobody listens (the real process would die). */
  signal(signal: Deno.Signal, at: number): void {
    this.clock = at;
    const handlers = this.handlers.get(signal);
    if (!handlers?.size) throw new Error(`${signal} at ${at} ms would kill the process: no handler`);
    for (const handler of handlers) handler();
  }
}

function logger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger({ write: (line) => lines.push(line), now: () => 0 }), lines };
}

Deno.test("SignalTally counts copies of one signal once and counts distinct ones up to force", () => {
  const tally = new SignalTally();
  assert.equal(tally.receive(100), "stop");
  assert.equal(tally.receive(101), "duplicate");
  assert.equal(tally.receive(100 + DUPLICATE_WINDOW_MS - 1), "duplicate");
  assert.equal(tally.receive(100 + DUPLICATE_WINDOW_MS), "already-stopping");
  assert.equal(tally.receive(100 + DUPLICATE_WINDOW_MS + 5), "duplicate");
  assert.equal(tally.receive(100 + 2 * DUPLICATE_WINDOW_MS), "force");
  assert.equal(tally.receive(100 + 3 * DUPLICATE_WINDOW_MS), "force");
});

Deno.test("StopSignals asks for one stop when a Ctrl-C arrives three times at once (terminal, deno task, launcher)", async () => {
  const host = new FakeHost();
  const { log, lines } = logger();
  const signals = new StopSignals(log, host);
  host.signal("SIGINT", 5000);
  host.signal("SIGINT", 5001);
  host.signal("SIGINT", 5002);
  assert.equal(await signals.requested, "SIGINT");
  assert.deepEqual(lines, []);
  assert.deepEqual(host.exits, []);
  signals.close();
});

Deno.test("StopSignals keeps its handlers through the stop: a second signal is logged, a third forces exit 1", async () => {
  const host = new FakeHost();
  const { log, lines } = logger();
  const signals = new StopSignals(log, host);
  host.signal("SIGTERM", 0);
  assert.equal(await signals.requested, "SIGTERM");
  host.signal("SIGINT", 1500);
  host.signal("SIGINT", 1501);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /WARN already_stopping signal=SIGINT advice="a third signal forces the exit"/);
  assert.deepEqual(host.exits, []);
  host.signal("SIGHUP", 3000);
  assert.match(lines[1]!, /ERROR forced_exit signal=SIGHUP code=1/);
  assert.deepEqual(host.errors, [
    "error: SIGHUP again while stopping: exiting at once (sessions may not have been told goodbye)",
  ]);
  assert.deepEqual(host.exits, [1]);
  signals.close();
});

Deno.test("StopSignals listens to SIGINT, SIGTERM and SIGHUP until closed", () => {
  const host = new FakeHost();
  const signals = new StopSignals(logger().log, host);
  for (const signal of STOP_SIGNALS) assert.equal(host.handlers.get(signal)?.size, 1, signal);
  assert.deepEqual([...STOP_SIGNALS].sort(), ["SIGHUP", "SIGINT", "SIGTERM"]);
  signals.close();
  for (const signal of STOP_SIGNALS) assert.equal(host.handlers.get(signal)?.size, 0, signal);
});
