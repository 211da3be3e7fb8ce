import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Logger } from "../../lib/server/logger.ts";

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
