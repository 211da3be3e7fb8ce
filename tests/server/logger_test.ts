import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Logger } from "../../lib/server/logger.ts";
import { ManualClock } from "./_manual_clock.ts";

const LOGGER = fileURLToPath(new URL("../../lib/server/logger.ts", import.meta.url));

/** Run a script that logs to the default sink (stderr), and return what reached stderr. */
async function stderrOf(script: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `import { Logger } from ${JSON.stringify(LOGGER)};\n${script}`],
    stdout: "null",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stderr);
}

Deno.test("Logger batches info lines on stderr, writes a warning at once after them, and flushes at exit", async () => {
  const text = await stderrOf(`
    const log = new Logger({ now: () => 0 });
    log.info("first");
    Deno.stderr.writeSync(new TextEncoder().encode("MARK 1\\n"));
    log.warn("second");
    Deno.stderr.writeSync(new TextEncoder().encode("MARK 2\\n"));
    log.info("third");
  `);
  const lines = text.trim().split("\n").map((l) => l.replace(/^\d{4}-\S+ /, ""));
  assert.deepEqual(lines, ["MARK 1", "INFO first", "WARN second", "MARK 2", "INFO third"]);
});

Deno.test("Logger writes the buffered lines before an uncaught error ends the process", async () => {
  const text = await stderrOf(`
    new Logger({ now: () => 0 }).info("before the crash");
    throw new Error("boom");
  `);
  assert.match(text, /INFO before_the_crash|INFO "before the crash"/);
  assert.ok(text.indexOf("before the crash") < text.indexOf("boom"), text);
});

Deno.test("Logger hands a custom sink each line as it is logged", () => {
  const lines: string[] = [];
  const log = new Logger({ format: "json", write: (l) => lines.push(l), now: () => 0 });
  log.info("a", { n: 1 });
  log.error("b");
  assert.deepEqual(lines.map((l) => JSON.parse(l).event), ["a", "b"]);
});

/** A logger with a rate limit on a clock and timers the test drives. */
function limitedLogger(limit: { linesPerSecond: number; burst: number }) {
  const lines: string[] = [];
  const clock = new ManualClock();
  const log = new Logger({
    write: (line) => lines.push(line.replace(/^\S+ /, "")),
    now: () => clock.now(),
    limit,
    schedule: (task, ms) => {
      const timer = clock.setTimeout(task, ms);
      return () => clock.clearTimeout(timer);
    },
  });
  return {
    log,
    lines,
    get pending(): number {
      return clock.pending;
    },
    /** Move the clock on, running the timers that fall due. */
    advance(ms: number): void {
      clock.advance(ms);
    },
  };
}

Deno.test("Logger lets an event log its burst, then its rate, and reports what it left out once a second", () => {
  const kit = limitedLogger({ linesPerSecond: 10, burst: 20 });
  for (let i = 0; i < 1000; i++) kit.log.warn("accept_failed", { n: i });
  assert.equal(kit.lines.length, 20, "the burst");
  assert.equal(kit.lines[19], "WARN accept_failed n=19");
  assert.equal(kit.pending, 1, "one report is due");
  kit.advance(1000);
  assert.deepEqual(kit.lines.slice(20), ["WARN suppressed of=accept_failed count=980 seconds=1"]);
  assert.equal(kit.pending, 0);
  // A second later the bucket has earned 10 lines (no more), and the rest is counted again.
  for (let i = 0; i < 1000; i++) kit.log.warn("accept_failed", { n: i });
  assert.equal(kit.lines.length, 21 + 10);
  kit.advance(1000);
  assert.equal(kit.lines.at(-1), "WARN suppressed of=accept_failed count=990 seconds=1");
  // Once the flood stops, nothing more is reported, and the bucket fills up again.
  kit.advance(10_000);
  assert.equal(kit.pending, 0);
  const before = kit.lines.length;
  for (let i = 0; i < 20; i++) kit.log.info("accept_failed");
  assert.equal(kit.lines.length, before + 20);
});

Deno.test("Logger limits each event name on its own, errors too, and reports them in one line each", () => {
  const kit = limitedLogger({ linesPerSecond: 1, burst: 2 });
  for (let i = 0; i < 5; i++) {
    kit.log.error("connection_error");
    kit.log.info("connect");
  }
  assert.deepEqual(kit.lines, [
    "ERROR connection_error",
    "INFO connect",
    "ERROR connection_error",
    "INFO connect",
  ]);
  kit.advance(500);
  kit.log.info("connect");
  kit.advance(500);
  assert.deepEqual(kit.lines.slice(4), [
    "WARN suppressed of=connection_error count=3 seconds=1",
    "WARN suppressed of=connect count=4 seconds=1",
  ]);
});

Deno.test("Logger.always is never left out, and flushSuppressed reports at once and cancels the report", () => {
  const kit = limitedLogger({ linesPerSecond: 1, burst: 1 });
  for (let i = 0; i < 5; i++) kit.log.always("info", "listening", { n: i });
  kit.log.info("shutdown");
  kit.log.info("shutdown");
  kit.advance(250);
  kit.log.flushSuppressed();
  kit.log.always("info", "shutdown");
  assert.deepEqual(kit.lines, [
    "INFO listening n=0",
    "INFO listening n=1",
    "INFO listening n=2",
    "INFO listening n=3",
    "INFO listening n=4",
    "INFO shutdown",
    "WARN suppressed of=shutdown count=1 seconds=0.3",
    "INFO shutdown",
  ]);
  assert.equal(kit.pending, 0, "no report is left due");
});

Deno.test("Logger logs every line with no limit, or a rate of 0, and refuses a burst below 1", () => {
  for (const limit of [undefined, { linesPerSecond: 0, burst: 20 }]) {
    const lines: string[] = [];
    const log = new Logger({ write: (l) => lines.push(l), now: () => 0, ...(limit ? { limit } : {}) });
    for (let i = 0; i < 1000; i++) log.warn("accept_failed");
    assert.equal(lines.length, 1000);
  }
  assert.throws(() => new Logger({ limit: { linesPerSecond: 10, burst: 0 } }), RangeError);
  assert.throws(() => new Logger({ limit: { linesPerSecond: -1, burst: 5 } }), RangeError);
});

Deno.test("Logger's summary line in JSON names the event it counts", () => {
  const lines: string[] = [];
  const log = new Logger({
    format: "json",
    write: (l) => lines.push(l),
    now: () => 0,
    limit: { linesPerSecond: 1, burst: 1 },
    schedule: () => () => {},
  });
  log.warn("accept_failed");
  log.warn("accept_failed");
  log.flushSuppressed();
  assert.deepEqual(JSON.parse(lines[1]!), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "warn",
    event: "suppressed",
    of: "accept_failed",
    count: 1,
    seconds: 0,
  });
});

Deno.test("Logger limits each code of an event on its own: a flood of one failure cannot hide another", () => {
  const kit = limitedLogger({ linesPerSecond: 1, burst: 2 });
  // Malformed LOGINs cost an attacker nothing; the guesses at alice's password are what the operator needs.
  for (let i = 0; i < 100; i++) kit.log.info("login_failed", { ip: "203.0.113.9", code: "BAD_SCRAM" });
  kit.log.info("login_failed", { ip: "198.51.100.4", user: "alice", code: "AUTH_FAILED" });
  kit.log.info("login_failed", { ip: "198.51.100.4", user: "alice", code: "AUTH_FAILED" });
  kit.log.info("login_failed", { ip: "198.51.100.4", user: "alice", code: "AUTH_FAILED" });
  kit.advance(1000);
  assert.deepEqual(kit.lines, [
    "INFO login_failed ip=203.0.113.9 code=BAD_SCRAM",
    "INFO login_failed ip=203.0.113.9 code=BAD_SCRAM",
    "INFO login_failed ip=198.51.100.4 user=alice code=AUTH_FAILED",
    "INFO login_failed ip=198.51.100.4 user=alice code=AUTH_FAILED",
    // What was left out is counted per code too.
    "WARN suppressed of=login_failed code=BAD_SCRAM count=98 seconds=1",
    "WARN suppressed of=login_failed code=AUTH_FAILED count=1 seconds=1",
  ]);
});

Deno.test("Logger tells its observer of every event, those its rate limit leaves out included", () => {
  const seen: string[] = [];
  const lines: string[] = [];
  const log = new Logger({
    write: (line) => lines.push(line),
    now: () => 0,
    limit: { linesPerSecond: 1, burst: 2 },
    schedule: () => () => {},
    observe: (level, event, fields) => seen.push(`${level} ${event} ${fields.code ?? ""}`),
  });
  for (let i = 0; i < 5; i++) log.info("login_failed", { code: "AUTH_FAILED" });
  log.always("info", "listening", {});
  assert.equal(lines.length, 3, "two lines of the burst and the one always logged");
  assert.deepEqual(seen, [...Array(5).fill("info login_failed AUTH_FAILED"), "info listening "]);
  log.flushSuppressed();
  assert.equal(seen.length, 6, "the logger's own suppressed report is not an event of the server's");
});
