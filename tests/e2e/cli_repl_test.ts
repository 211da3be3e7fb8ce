import assert from "node:assert/strict";
import { join } from "node:path";
import { clientArgs, installKeys, ServerProcess, tempDir } from "./_harness.ts";

/** The client on a pseudo-terminal (via util-linux `script`), typed at like a person would. */
class Terminal {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #output = "";
  #pump: Promise<void>;

  constructor(args: string[], env: Record<string, string>) {
    const command = [Deno.execPath(), ...clientArgs(args, env)]
      .map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    const child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", TERM: "dumb", ...env },
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const decoder = new TextDecoder();
    this.#pump = (async () => {
      for await (const chunk of child.stdout) this.#output += decoder.decode(chunk, { stream: true });
    })();
  }

  get output(): string {
    return this.#output;
  }

  /** Wait until the screen shows `text` after position `from`; return the position after it. */
  async expect(text: string, from = 0, timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const at = this.#output.indexOf(text, from);
      if (at >= 0) return at + text.length;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`Timed out waiting for ${JSON.stringify(text)}; screen:\n${this.#output}`);
  }

  async type(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  async close(): Promise<number> {
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    await this.#pump;
    await this.#child.stderr.cancel();
    return status.code;
  }
}

Deno.test("authchat client REPL hides passwords, asks twice when registering, and refuses a mismatch", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const term = new Terminal(["--port", String(server.tcpPort)], { XDG_CONFIG_HOME: dir.path });
  const secret = "hidden words stay hidden 4";
  try {
    let at = await term.expect("authchat> ");
    await term.type("help\n");
    at = await term.expect("close the connection and exit", at);
    await term.type("register pat\n");
    at = await term.expect("Choose a password: ", at);
    await term.type(secret + "\r");
    at = await term.expect("Repeat it: ", at);
    await term.type("not the same words 4\r");
    at = await term.expect("error: The two passwords do not match", at);
    await term.type("register pat\n");
    at = await term.expect("Choose a password: ", at);
    await term.type(secret + "\r");
    at = await term.expect("Repeat it: ", at);
    await term.type(secret + "\r");
    at = await term.expect("registered pat", at);
    await term.type("login\n");
    at = await term.expect("User: ", at);
    await term.type("pat\n");
    at = await term.expect("Password: ", at);
    await term.type(secret.slice(0, -1) + "X\x7f" + secret.slice(-1) + "\r");
    at = await term.expect("logged in as pat", at);
    await term.type("access\n");
    at = await term.expect("Welcome, pat.", at);
    await term.type("close\n");
    await term.expect("closed", at);
  } finally {
    assert.equal(await term.close(), 0, term.output);
  }
  assert.ok(!term.output.includes(secret), "the password was echoed");
  assert.ok(!term.output.includes("not the same words"), "the confirmation was echoed");
  assert.match(await server.settledLog(), /register .*user=pat/);
});
