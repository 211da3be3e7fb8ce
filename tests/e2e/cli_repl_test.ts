import assert from "node:assert/strict";
import { join } from "node:path";
import { clientArgs, installKeys, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";

const UP = "\x1b[A";
const LEFT = "\x1b[D";
const DELETE = "\x1b[3~";
const CTRL_D = "\x04";
const CTRL_U = "\x15";
const CTRL_C = "\x03";

/**
 * What a terminal shows after `raw`, line by line: a small emulator of what readline sends (carriage
 * return, cursor to a column, up, down, left, right, clear to the end of the line or screen), so a test
 * sees what a person sees, not the bytes that drew it. Lines do not wrap.
 */
function render(raw: string): string {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  const line = () => lines[row] ??= [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    // deno-lint-ignore no-control-regex -- terminal escape sequences are what is parsed
    const esc = c === "\x1b" ? /^\x1b\[([0-9;]*)([A-Za-z])/.exec(raw.slice(i, i + 16)) : null;
    if (esc) {
      i += esc[0].length - 1;
      const n = Number(esc[1] || "0");
      switch (esc[2]) {
        case "G":
          col = Math.max(0, (n || 1) - 1);
          break;
        case "A":
          row = Math.max(0, row - (n || 1));
          break;
        case "B":
          row += n || 1;
          break;
        case "C":
          col += n || 1;
          break;
        case "D":
          col = Math.max(0, col - (n || 1));
          break;
        case "J":
          line().length = Math.min(line().length, col);
          lines.length = row + 1;
          break;
        case "K":
          if (n === 2) line().length = 0;
          else line().length = Math.min(line().length, col);
          break;
      }
      continue;
    }
    if (c === "\r") col = 0;
    else if (c === "\n") {
      row++;
      col = 0;
      line();
    } else if (c >= " ") {
      const l = line();
      while (l.length < col) l.push(" ");
      l[col++] = c;
    }
  }
  return Array.from(lines, (l) => (l ?? []).join("")).join("\n");
}

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
      env: { NO_COLOR: "1", TERM: "xterm", ...env },
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    const decoder = new TextDecoder();
    this.#pump = (async () => {
      for await (const chunk of child.stdout) this.#output += decoder.decode(chunk, { stream: true });
    })();
  }

  /** Everything the terminal received, escape sequences included. */
  get output(): string {
    return this.#output;
  }

  /** What the screen shows so far (see {@linkcode render}). */
  get screen(): string {
    return render(this.#output);
  }

  /** Wait until the line being edited (the screen's last line) reads `text` exactly. */
  async expectLine(text: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.screen.split("\n").at(-1) === text) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`Timed out waiting for the line ${JSON.stringify(text)}; screen:\n${this.screen}`);
  }

  /** Wait until the screen text shows `text` after position `from`; return the position after it. */
  async expect(text: string, from = 0, timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const at = this.screen.indexOf(text, from);
      if (at >= 0) return at + text.length;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`Timed out waiting for ${JSON.stringify(text)}; screen:\n${this.screen}`);
  }

  async type(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  /**
   * Run `steps`, then close the terminal whether they passed or not (see {@linkcode close}).
   *
   * @param steps What is typed and expected.
   * @returns The client's exit status.
   */
  async drive(steps: () => Promise<void>): Promise<number> {
    let status: number;
    try {
      await steps();
    } finally {
      status = await this.close();
    }
    return status;
  }

  /** End input and wait for the exit (a client still waiting for a line after a failed step is killed). */
  async close(): Promise<number> {
    await this.#writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<false>((r) => timer = setTimeout(r, 10_000, false)),
    ]);
    clearTimeout(timer);
    if (!exited) this.#child.kill("SIGKILL");
    const status = await this.#child.status;
    await this.#pump;
    await this.#child.stderr.cancel();
    return status.code;
  }
}

/** Wait until the server has logged `pattern` (its log is written at most LOG_FLUSH_MS late). */
async function serverLogged(server: ServerProcess, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(server.stderr)) {
    if (Date.now() > deadline) throw new Error(`The server never logged ${pattern}:\n${server.stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const PASSWORD = "hidden words stay hidden 4";

/** A running server and the temporary directory it and its clients keep their files in. */
interface ReplServer {
  dir: string;
  server: ServerProcess;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Start a server in a fresh temporary directory, with keys installed and `users` seeded; disposing of it
 * stops the server and removes the directory.
 */
async function replServer(
  users: Record<string, string> = {},
  env?: Record<string, string>,
): Promise<ReplServer> {
  const dir = await tempDir();
  try {
    const data = join(dir.path, "data");
    await installKeys(data);
    await seedUsers(data, users);
    const server = await ServerProcess.start(data, env === undefined ? {} : { env });
    return {
      dir: dir.path,
      server,
      async [Symbol.asyncDispose]() {
        await server[Symbol.asyncDispose]();
        await dir[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await dir[Symbol.asyncDispose]();
    throw err;
  }
}

/**
 * Type `command` (default `login pat`) and the password at its prompt.
 *
 * @returns The screen position after `logged in as pat`.
 */
async function logIn(term: Terminal, at: number, command = "login pat"): Promise<number> {
  await term.type(command + "\r");
  at = await term.expect("Password: ", at);
  await term.type(PASSWORD + "\r");
  return await term.expect("logged in as pat", at);
}

Deno.test("authchat client REPL hides passwords, asks twice when registering, and refuses a mismatch", async () => {
  await using fixture = await replServer();
  const { server } = fixture;
  const term = new Terminal(["--port", String(server.tcpPort)], { XDG_CONFIG_HOME: fixture.dir });
  const status = await term.drive(async () => {
    let at = await term.expect("authchat> ");
    await term.type("help\n");
    at = await term.expect("close the connection and exit", at);
    await term.type("register pat\n");
    at = await term.expect("Choose a password: ", at);
    await term.type(PASSWORD + "\r");
    at = await term.expect("Repeat it: ", at);
    await term.type("not the same words 4\r");
    at = await term.expect("error: The two passwords do not match", at);
    await term.type("register pat\n");
    at = await term.expect("Choose a password: ", at);
    await term.type(PASSWORD + "\r");
    at = await term.expect("Repeat it: ", at);
    await term.type(PASSWORD + "\r");
    at = await term.expect("registered pat", at);
    await term.type("login\n");
    at = await term.expect("User: ", at);
    await term.type("pat\r");
    const userLine = at;
    at = await term.expect("Password: ", at);
    assert.equal(term.screen.slice(userLine, term.screen.indexOf("\n", userLine)), "pat", "echoed once");
    await term.type(PASSWORD.slice(0, -1) + "X\x7f" + PASSWORD.slice(-1) + "\r");
    at = await term.expect("logged in as pat", at);
    await term.type("access\n");
    at = await term.expect("Welcome, pat.", at);
    await term.type("close\n");
    await term.expect("closed", at);
  });
  assert.equal(status, 0, term.screen);
  assert.ok(!term.output.includes(PASSWORD), "the password was echoed");
  assert.ok(!term.output.includes("not the same words"), "the confirmation was echoed");
  assert.match(await server.settledLog(), /register .*user=pat/);
});

Deno.test("authchat client REPL edits lines, recalls commands but never passwords, stops on Ctrl-C, leaves on Ctrl-D", async () => {
  await using fixture = await replServer({ pat: PASSWORD });
  const term = new Terminal(["--port", String(fixture.server.tcpPort)], { XDG_CONFIG_HOME: fixture.dir });
  const status = await term.drive(async () => {
    let at = await term.expect("authchat> ");
    // Left arrow then typing inserts; Delete removes the character under the cursor.
    await term.type(`helo${LEFT}l${LEFT}${LEFT}${LEFT}x${DELETE}${DELETE}\r`);
    at = await term.expect("error: Unknown command", at);
    await term.type(`hellox${LEFT}${DELETE}\r`);
    at = await term.expect("server authchat, protocol 1", at);
    // Arrow up recalls the last command (not the line that was no command).
    await term.type(`${UP}\r`);
    at = await term.expect("server authchat, protocol 1", at);
    at = await logIn(term, at);
    // The history holds login pat, then hello: the password is not in it.
    await term.type(UP);
    await term.expectLine("authchat> login pat");
    await term.type(UP);
    await term.expectLine("authchat> hello");
    await term.type(`${CTRL_U}is_logged\r`);
    at = await term.expect("logged in as pat", at);
    // Ctrl-C drops the line being typed, cancels a password prompt, and ends a wait.
    await term.type("some half-typed words");
    await term.expectLine("authchat> some half-typed words");
    await term.type(CTRL_C);
    await term.expectLine("authchat> ");
    await term.type("delete\r");
    at = await term.expect("Current password: ", at);
    await term.type(`${PASSWORD.slice(0, 5)}${CTRL_C}`);
    at = await term.expect("error: Cancelled", at);
    await term.type("wait 600\r");
    await term.expectLine("");
    await term.type(CTRL_C);
    at = await term.expect("error: Interrupted", at);
    await term.type(CTRL_D);
  });
  assert.equal(status, 0, term.screen);
  assert.ok(
    term.screen.endsWith("authchat> \n"),
    `Ctrl-D ends the prompt's line: ${JSON.stringify(term.screen)}`,
  );
  assert.ok(!term.output.includes(PASSWORD), "the password was shown");
  assert.ok(!term.screen.includes("\\u001b"), "an escape sequence was taken for text");
  assert.equal(term.screen.match(/error: /g)?.length, 3, term.screen);
  assert.ok(!term.screen.includes("half-typed words\n"), "a dropped line was run");
});

Deno.test("authchat client REPL redraws the line being typed below messages and presence notices", async () => {
  await using fixture = await replServer({ pat: PASSWORD, quin: PASSWORD });
  const { dir, server } = fixture;
  const pw = join(dir, "pw");
  await Deno.writeTextFile(pw, PASSWORD);
  const term = new Terminal(["--port", String(server.tcpPort)], { AUTHCHAT_CONFIG_DIR: join(dir, "pat") });
  const status = await term.drive(async () => {
    let at = await logIn(term, await term.expect("authchat> "));
    await term.type("list\r");
    at = await term.expect("1 online", at);
    await term.type("is_lo");
    await term.expectLine("authchat> is_lo");
    // Another user comes online, sends a message and leaves while pat is typing.
    const quin = await runCli("client", [
      ...["--port", String(server.tcpPort), "--user", "quin", "--password-file", pw],
      ...["--exec", "login", "--exec", "send pat hello while you type"],
    ], { env: { AUTHCHAT_CONFIG_DIR: join(dir, "quin") } });
    assert.equal(quin.code, 0, quin.stderr);
    const arrived = [
      "presence: quin online",
      "msg from quin: hello while you type",
      "presence: quin offline",
    ];
    await term.expect("presence: quin offline", at);
    // Each arrived on a line of its own (none mixed with the typed text), and the prompt came back below
    // them with the text typed so far.
    const lines = term.screen.split("\n");
    assert.deepEqual(lines.filter((l) => l.includes("quin")).sort(), arrived.sort(), term.screen);
    await term.expectLine("authchat> is_lo");
    await term.type("gged\r");
    at = await term.expect("logged in as pat", at);
    await term.type("close\r");
    await term.expect("closed", at);
  });
  assert.equal(status, 0, term.screen);
});

Deno.test("authchat client REPL checks the current password, then the new one against the policy, before asking again", async () => {
  await using fixture = await replServer({ pat: PASSWORD });
  const { server } = fixture;
  const fresh = "lantern meadow quartz 8";
  const term = new Terminal(["--tls", "--port", String(server.tlsPort), "--user", "pat"], {
    XDG_CONFIG_HOME: fixture.dir,
  });
  const status = await term.drive(async () => {
    let at = await logIn(term, await term.expect("authchat> "), "login");
    await term.type("passwd\r");
    at = await term.expect("Current password: ", at);
    await term.type("not my password at all\r");
    const refused = await term.expect("error: Wrong password", at);
    assert.ok(!term.screen.slice(at, refused).includes("New password"), "the new password was asked first");
    at = refused;
    await term.type("passwd\r");
    at = await term.expect("Current password: ", at);
    await term.type(PASSWORD + "\r");
    at = await term.expect("New password: ", at);
    await term.type("short 1\r");
    const short = await term.expect("error: Password refused: 7 characters is shorter than 10", at);
    assert.ok(!term.screen.slice(at, short).includes("Repeat it"), "a refused password was asked twice");
    at = short;
    await term.type("passwd\r");
    at = await term.expect("Current password: ", at);
    await term.type(PASSWORD + "\r");
    at = await term.expect("New password: ", at);
    await term.type(fresh + "\r");
    at = await term.expect("Repeat it: ", at);
    await term.type(fresh + "\r");
    at = await term.expect("password changed", at);
    await term.type("close\r");
    await term.expect("closed", at);
  });
  assert.equal(status, 0, term.screen);
  const log = await server.settledLog();
  assert.equal(log.match(/passwd/g)?.length, 1, `one PASSWD reached the server:\n${log}`);
  for (const secret of [PASSWORD, fresh, "not my password at all"]) {
    assert.ok(!term.output.includes(secret), `${secret} was shown`);
  }
});

Deno.test("authchat client REPL outlives the server's login deadline: it reconnects silently", async () => {
  await using fixture = await replServer({ pat: PASSWORD }, { AUTHCHAT_AUTH_TIMEOUT: "1" });
  const { server } = fixture;
  const term = new Terminal(["--port", String(server.tcpPort)], { XDG_CONFIG_HOME: fixture.dir });
  const status = await term.drive(async () => {
    let at = await term.expect("authchat> ");
    await term.type("hello\r");
    at = await term.expect("server authchat", at);
    // The connection HELLO opened sits idle, not logged in, past the deadline while the user types.
    await term.type("log");
    await serverLogged(server, /timeout .*AUTH_TIMEOUT/);
    at = await logIn(term, at, "in pat");
    await term.type("close\r");
    await term.expect("closed", at);
  });
  assert.equal(status, 0, term.screen);
  assert.ok(!/server: |reconnecting|error: /.test(term.screen), term.screen);
});

Deno.test("authchat client --exec on a terminal asks the password it needs without echo", async () => {
  await using fixture = await replServer({ pat: PASSWORD });
  const term = new Terminal(
    ["--port", String(fixture.server.tcpPort), "--user", "pat", "--exec", "login", "--exec", "is_logged"],
    { XDG_CONFIG_HOME: fixture.dir },
  );
  const status = await term.drive(async () => {
    const at = await term.expect("Password: ");
    await term.type(PASSWORD + "\r");
    await term.expect("logged in as pat\nlogged in as pat", at);
  });
  assert.equal(status, 0, term.screen);
  assert.ok(!term.output.includes(PASSWORD), "the password was shown");
});

Deno.test("authchat client REPL does not echo a password pasted together with its command", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { pat: PASSWORD });
  await using server = await ServerProcess.start(data);
  const term = new Terminal(["--port", String(server.tcpPort)], { XDG_CONFIG_HOME: dir.path });
  let status: number;
  try {
    let at = await term.expect("authchat> ");
    // One paste: readline reads the password on before the command's hidden prompt is up.
    await term.type(`login pat\r${PASSWORD}\r`);
    at = await term.expect("logged in as pat", at);
    await term.type("close\r");
    await term.expect("closed", at);
  } finally {
    status = await term.close();
  }
  assert.equal(status, 0, term.screen);
  assert.ok(!term.output.includes(PASSWORD), `the password was shown:\n${term.screen}`);
});

Deno.test("authchat client REPL never shows a password pasted after a command that failed before asking", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const term = new Terminal(["--port", String(server.tcpPort)], { XDG_CONFIG_HOME: dir.path });
  let status: number;
  try {
    let at = await term.expect("authchat> ");
    // Pasted at once: passwd fails (not logged in) before its prompts, so the rest was typed ahead.
    await term.type(`passwd\r${PASSWORD}\rhello\r`);
    at = await term.expect("error: Not logged in", at);
    at = await term.expect("error: Unknown command", at);
    at = await term.expect("server authchat, protocol 1", at);
    await term.type("close\r");
    await term.expect("closed", at);
  } finally {
    status = await term.close();
  }
  assert.equal(status, 0, term.screen);
  assert.ok(!term.output.includes(PASSWORD), `the password was shown:\n${term.screen}`);
  assert.match(term.screen, /authchat> hello\n/, "a command typed ahead is shown at its prompt");
});
