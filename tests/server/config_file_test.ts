import assert from "node:assert/strict";
import { join } from "node:path";
import { coerceValue, ConfigError, readConfigFile } from "../../lib/server/config_file.ts";

async function withFile(text: string, body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "authchat-config-" });
  try {
    const path = join(dir, "c.yaml");
    await Deno.writeTextFile(path, text);
    await body(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function yamlError(text: string): Promise<ConfigError> {
  let caught: unknown;
  await withFile(text, async (path) => {
    try {
      await readConfigFile(path);
    } catch (err) {
      caught = err;
    }
  });
  assert.ok(caught instanceof ConfigError, `no ConfigError for ${JSON.stringify(text)}`);
  return caught;
}

Deno.test("readConfigFile reports a YAML syntax error once, whole, naming the key, line and column", async () => {
  const unclosed = await yamlError("host: a\nport: [1\n");
  assert.equal(unclosed.key, "port");
  assert.match(
    unclosed.message,
    /^Invalid configuration port: not valid YAML in .*c\.yaml at line 3 \(the end of the file\): Flow sequence .* end with a \]$/,
  );
  const nested = await yamlError("host: a\n  port: 2\n");
  assert.equal(nested.key, "host");
  assert.match(
    nested.message,
    /at line 1, column 7 \("host: a"\): Nested mappings are not allowed in compact mappings$/,
  );
  const quote = await yamlError("host: 'x\nport: 1\n");
  assert.equal(quote.key, "host", "an unclosed quote is its line's, not the next one's");
  assert.equal((await yamlError("port: [1\nuser: x\n")).key, "port");
  assert.equal((await yamlError("a: 1\nb: 2\na: 3\n")).key, "a", "a repeated key is its own line's");
  assert.equal((await yamlError("port: 1\nuser: {a: 1\nhost: b\n")).key, "user");
  const twice = await yamlError("tls: true\ntls: false\n");
  assert.match(
    twice.message,
    /^Invalid configuration tls: .*line 2, column 1 \("tls: false"\): Map keys must be unique$/,
  );
  assert.ok(!twice.message.includes("\n"), "one line");
});

Deno.test("readConfigFile accepts an empty or missing default file and refuses a list or a missing named one", async () => {
  await withFile("", async (path) => assert.deepEqual(await readConfigFile(path), {}));
  assert.deepEqual(await readConfigFile("/nonexistent/authchat/c.yaml", { optional: true }), {});
  await assert.rejects(readConfigFile("/nonexistent/authchat/c.yaml"), /cannot read the file/);
  const list = await yamlError("- a\n- b\n");
  assert.match(list.message, /expected a mapping of keys to values$/);
});

Deno.test("coerceValue checks kinds and bounds, and reads text only when told to", () => {
  const port = { type: "int", min: 1, max: 65535 } as const;
  assert.equal(coerceValue(port, "port", 1991, false), 1991);
  assert.equal(coerceValue(port, "AUTHCHAT_PORT", "1991", true), 1991);
  assert.throws(
    () => coerceValue(port, "port", "1991", false),
    /Invalid configuration port: expected an integer/,
  );
  assert.throws(() => coerceValue(port, "port", 0, false), /0 is not within 1\.\.65535/);
  assert.equal(coerceValue({ type: "bool" }, "tls", "yes", true), true);
  assert.throws(() => coerceValue({ type: "bool" }, "tls", "yes", false), /expected true or false/);
  assert.throws(() => coerceValue({ type: "path" }, "ca", "", false), /expected a non-empty string/);
});
