import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { recoverIdentity } from "../../lib/client/_chat_identity.ts";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import type { KeyBackupMessage } from "../../lib/codec/messages.ts";
import { exportIdentityPrivate } from "../../lib/crypto/identity_key.ts";
import { installKeys, runCli, ServerProcess, tempDir } from "./_harness.ts";
import { concat, TcpProxy } from "../_tcp_proxy.ts";
import { UdpCapture } from "./_udp_capture.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import type { ChatClientOptions } from "./_chat_kit.ts";
import { findSecret } from "./_secret_search.ts";

const PASSWORD = "tulip orbit canyon 7";
const encoder = new TextEncoder();

/** A server on port 0 with the given users registered through the real client. */
async function chatServer(
  dir: string,
  users: string[],
): Promise<{ server: ServerProcess; passwordFile: string; data: string }> {
  const data = join(dir, "data");
  await installKeys(data);
  const server = await ServerProcess.start(data);
  try {
    return { server, passwordFile: await registerUsers(server.tcpPort, dir, users, PASSWORD), data };
  } catch (err) {
    await server.kill();
    throw err;
  }
}

function clientOptions(
  dir: string,
  port: number,
  passwordFile: string,
): (user: string, args?: string[]) => ChatClientOptions {
  return (user, args = []) => ({ port, user, passwordFile, configDir: join(dir, `cfg-${user}`), args });
}

function count(lines: string[], line: string): number {
  return lines.filter((l) => l === line).length;
}

Deno.test("authchat client shows presence and delivers direct messages between three online users", async () => {
  await using dir = await tempDir();
  const { server, passwordFile } = await chatServer(dir.path, ["alice", "bob", "carol"]);
  await using _server = server;
  const options = clientOptions(dir.path, server.tcpPort, passwordFile);

  await using alice = await ChatClient.login(options("alice"));
  await using bob = await ChatClient.login(options("bob"));
  await alice.waitFor("out", /^presence: bob online$/);
  await using carol = await ChatClient.login(options("carol"));
  await alice.waitFor("out", /^presence: carol online$/);
  await bob.waitFor("out", /^presence: carol online$/);

  const listFrom = alice.out.length;
  const listEnd = await alice.expectOk("list", /^\d+ online$/);
  assert.equal(alice.out[listEnd], "3 online");
  const listed = alice.out.slice(listFrom, listEnd).filter((l) => / SHA256:/.test(l)).sort();
  assert.equal(listed.length, 3, alice.transcript);
  assert.match(listed[0]!, /^alice SHA256:[A-Za-z0-9+/]{43} \(you\)$/);
  assert.match(listed[1]!, /^bob SHA256:[A-Za-z0-9+/]{43}$/);
  assert.match(listed[2]!, /^carol SHA256:[A-Za-z0-9+/]{43}$/);
  const prints = listed.map((l) => l.split(" ")[1]);
  assert.equal(new Set(prints).size, 3, "each user has their own identity key");
  // The key the server lists for bob is the one bob holds.
  await bob.expectOk("fingerprint alice", /^safety number: /);
  assert.ok(bob.out.includes(`you (bob): ${prints[1]}`), bob.transcript);
  assert.ok(bob.out.includes(`alice: ${prints[0]} (not pinned yet)`), bob.transcript);

  const messages = [
    { from: alice, to: bob, text: "hello bob, lunch at noon?" },
    { from: bob, to: alice, text: "hi alice — yes, see you there 🍜" },
    { from: carol, to: alice, text: "alice, carol here:  two  spaces kept" },
  ];
  for (const m of messages) {
    await m.from.expectOk(`send ${m.to.user} ${m.text}`, /^delivered$/);
    await m.to.waitFor("out", new RegExp(`^msg from ${m.from.user}: `));
  }

  await carol.expectOk("logout", /^logged out$/);
  await alice.waitFor("out", /^presence: carol offline$/);
  await bob.waitFor("out", /^presence: carol offline$/);

  const killedAt = Date.now();
  await bob.kill();
  await alice.waitFor("out", /^presence: bob offline$/, { timeoutMs: 15_000 });
  assert.ok(Date.now() - killedAt < 15_000);

  for (const m of messages) {
    assert.equal(count(m.to.out, `msg from ${m.from.user}: ${m.text}`), 1, m.to.transcript);
  }
  assert.equal(count(alice.out, "delivered"), 1);
  assert.equal(count(bob.out, "delivered"), 1);
  assert.equal(count(carol.out, "delivered"), 1);
  assert.ok(!carol.out.some((l) => l.startsWith("msg from")), "carol was sent nothing");
  for (
    const [client, lines] of [
      [alice, [
        "presence: bob online",
        "presence: carol online",
        "presence: carol offline",
        "presence: bob offline",
      ]],
      [bob, ["presence: carol online", "presence: carol offline"]],
    ] as const
  ) {
    for (const line of lines) assert.equal(count(client.out, line), 1, `${line}\n${client.transcript}`);
  }

  const aliceStatus = await alice.finish();
  const carolStatus = await carol.finish();
  assert.equal(aliceStatus.code, 0, alice.transcript);
  assert.equal(carolStatus.code, 0, carol.transcript);
});

Deno.test("authchat server drops a frozen client by keepalive timeout but keeps an idle pinging one", async () => {
  // Default keepalive_timeout (15 s) against the client's 5 s PINGs. A SIGSTOPped process keeps its TCP
  // connection open but stops pinging, so only the keepalive timeout can notice it (SIGKILL would close it).
  await using dir = await tempDir();
  const { server, passwordFile } = await chatServer(dir.path, ["alice", "bob"]);
  await using _server = server;
  const options = clientOptions(dir.path, server.tcpPort, passwordFile);

  await using alice = await ChatClient.login(options("alice"));
  // Alice sends no command from here until the end, only her PINGs: she is the healthy idle client.
  const aliceIdleSince = Date.now();
  // Bob's connection goes through a proxy so the test sees his first PING answered.
  await using proxy = new TcpProxy(server.tcpPort, { capture: true });
  await using bob = await ChatClient.login({ ...options("bob"), port: proxy.port });
  await alice.waitFor("out", /^presence: bob online$/);
  let offlineAfter: number;
  try {
    // Only a session that has pinged is held to the keepalive timeout; his silence starts with that PING.
    await proxy.waitFor("down", /"op":"PONG"/, 10_000);
    Deno.kill(bob.pid, "SIGSTOP");
    const frozenAt = Date.now();
    await alice.waitFor("out", /^presence: bob offline$/, { timeoutMs: 20_000 });
    offlineAfter = Date.now() - frozenAt;
  } finally {
    try {
      // Let it run again, so the disposer's kill and the pumps finish.
      Deno.kill(bob.pid, "SIGCONT");
    } catch {
      // Already exited.
    }
  }
  // Not before the 15 s of silence (less the moment between the PONG and the freeze), nor long after.
  assert.ok(
    offlineAfter >= 13_000 && offlineAfter <= 20_000,
    `bob offline ${offlineAfter} ms after freezing`,
  );
  await bob.waitFor("err", /^server: No keepalive for 15 s: session closed \(KEEPALIVE_TIMEOUT\)$/, {
    timeoutMs: 5_000,
  });
  assert.match(
    await server.settledLog(),
    / INFO timeout session=\d+ ip=\S+ user=bob code=KEEPALIVE_TIMEOUT$/m,
  );

  // Alice has been silent but for PINGs for longer than the keepalive timeout, and is still logged in.
  await new Promise((r) => setTimeout(r, Math.max(0, aliceIdleSince + 17_000 - Date.now())));
  const listEnd = await alice.expectOk("list", /^\d+ online$/);
  assert.equal(alice.out[listEnd], "1 online", alice.transcript);
  const log = await server.settledLog();
  assert.equal(log.split("\n").filter((l) => / INFO timeout /.test(l)).length, 1, log);
  assert.ok(!alice.err.some((l) => /^(server|error): /.test(l)), alice.transcript);
  assert.equal(count(alice.out, "presence: bob offline"), 1, alice.transcript);
  assert.equal((await alice.finish()).code, 0, alice.transcript);
});

Deno.test("authchat client send fails for offline and unknown users without harming later sends", async () => {
  await using dir = await tempDir();
  const { server, passwordFile } = await chatServer(dir.path, ["alice", "dave"]);
  await using _server = server;
  const options = clientOptions(dir.path, server.tcpPort, passwordFile);

  const script = await runCli("client", [
    "--port",
    String(server.tcpPort),
    "--user",
    "alice",
    "--password-file",
    passwordFile,
    "--exec",
    "login",
    "--exec",
    "send dave are you up?",
  ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, "cfg-alice") } });
  assert.equal(script.code, 1, script.stderr);
  assert.match(script.stderr, /^error: .*\(USER_OFFLINE\)$/m);
  assert.match(script.stderr, /1 command failed/);

  await using alice = await ChatClient.login(options("alice"));
  const offline = await alice.command("send dave still there?", /^delivered$/);
  assert.equal(offline.ok, false);
  assert.match(offline.line, /USER_OFFLINE/);
  const unknown = await alice.command("send nosuchuser hello", /^delivered$/);
  assert.equal(unknown.ok, false);
  assert.match(unknown.line, /UNKNOWN_USER/);

  await using dave = await ChatClient.login(options("dave"));
  await alice.waitFor("out", /^presence: dave online$/);
  await alice.expectOk("send dave welcome back", /^delivered$/);
  await dave.waitFor("out", /^msg from alice: welcome back$/);
  assert.ok(!dave.out.some((l) => /are you up|still there/.test(l)), dave.transcript);
  assert.equal(count(dave.out, "msg from alice: welcome back"), 1);

  const status = await alice.finish();
  assert.equal(status.code, 1, "the two failed sends count");
  assert.ok(alice.err.includes("2 commands failed"), alice.transcript);
  assert.equal((await dave.finish()).code, 0, dave.transcript);
});

Deno.test("authchat client refuses a changed identity key until trust", async () => {
  await using dir = await tempDir();
  const { server, passwordFile } = await chatServer(dir.path, ["alice", "bob"]);
  await using _server = server;
  const options = clientOptions(dir.path, server.tcpPort, passwordFile);

  await using alice = await ChatClient.login(options("alice"));
  const bob = await ChatClient.login(options("bob"));
  let oldKey: string;
  try {
    await alice.expectOk("send bob first message", /^delivered$/);
    await bob.waitFor("out", /^msg from alice: first message$/);
    const end = await alice.expectOk("fingerprint bob", /^safety number: /);
    const line = alice.out.slice(0, end).findLast((l) => l.startsWith("bob: "))!;
    assert.match(line, /^bob: SHA256:\S{43} \(pinned\)$/);
    oldKey = line.split(" ")[1]!;
    assert.equal((await bob.finish()).code, 0, bob.transcript);
  } finally {
    await bob.kill();
  }
  const gone = await alice.waitFor("out", /^presence: bob offline$/);

  // Bob's account is deleted and registered again: same name, new identity key.
  const recreate = await runCli("client", [
    "--port",
    String(server.tcpPort),
    "--user",
    "bob",
    "--password-file",
    passwordFile,
    "--exec",
    "login",
    "--exec",
    "delete",
    "--exec",
    "register bob",
  ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, "cfg-bob") } });
  assert.equal(recreate.code, 0, recreate.stderr);

  await using newBob = await ChatClient.login(options("bob"));
  // Online now: notices about one user are coalesced (the re-creating script's login and delete may show
  // as one change, or none), but the last one alice sees says the final state.
  for (let from = gone + 1;;) {
    from = await alice.waitFor("out", /^presence: bob online$/, { from }) + 1;
    if (!alice.out.slice(from).some((l) => l === "presence: bob offline")) break;
  }
  const listEnd = await newBob.expectOk("list", /^\d+ online$/);
  const newKey = newBob.out.slice(0, listEnd).findLast((l) => l.startsWith("bob SHA256:"))!.split(" ")[1]!;
  assert.notEqual(newKey, oldKey);

  const refused = await alice.command("send bob are you really bob?", /^delivered$/);
  assert.equal(refused.ok, false);
  assert.match(refused.line, /WARNING: the identity key of bob has CHANGED/);
  assert.match(refused.line, new RegExp(`now ${newKey.replace(/[+/]/g, "\\$&")}`));
  assert.match(refused.line, /Nothing was sent/);

  const end = await alice.expectOk("fingerprint bob", /^safety number: /);
  assert.ok(alice.out.includes(`bob: ${newKey} (CHANGED: pinned ${oldKey})`), alice.transcript);
  assert.match(alice.out[end]!, /^safety number: (\d{5} ){11}\d{5}$/);

  await alice.expectOk("trust bob", new RegExp(`^trusted bob: `));
  assert.ok(alice.out.includes(`trusted bob: ${newKey}`), alice.transcript);
  await alice.expectOk("send bob hello again", /^delivered$/);
  await newBob.waitFor("out", /^msg from alice: hello again$/);
  assert.ok(!newBob.out.some((l) => l.includes("are you really bob")), newBob.transcript);
  const pinnedEnd = await alice.expectOk("fingerprint bob", /^safety number: /);
  assert.ok(alice.out.slice(end + 1, pinnedEnd).includes(`bob: ${newKey} (pinned)`), alice.transcript);

  assert.equal((await alice.finish()).code, 1, "the refused send counts as a failure");
  assert.ok(alice.err.includes("1 command failed"), alice.transcript);
});

Deno.test("authchat server relays direct messages without ever seeing their text, private keys or passwords", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const server = await ServerProcess.start(data);
  const tcp = new TcpProxy(server.tcpPort, { capture: true });
  const udp = new UdpCapture(server.udpPort);
  const clients: ChatClient[] = [];
  try {
    const passwordFile = await registerUsers(tcp.port, dir.path, ["alice", "bob"], PASSWORD);
    const options = clientOptions(dir.path, tcp.port, passwordFile);
    const proxied = ["--relay", "--server-udp-port", String(udp.port)];
    const alice = await ChatClient.login(options("alice", proxied));
    clients.push(alice);
    const bob = await ChatClient.login(options("bob", proxied));
    clients.push(bob);

    const short = "the eagle lands at midnight 7f3a9c";
    const long = `${short} ` +
      Array.from(crypto.getRandomValues(new Uint8Array(10_000)), (b) => b.toString(16).padStart(2, "0"))
        .join("");
    const secrets = [short, long.slice(0, 20_000)];
    for (const text of secrets) {
      await alice.expectOk(`send bob ${text}`, /^delivered$/);
      await bob.waitFor("out", new RegExp(`^msg from alice: ${text.slice(0, 40)}`));
      assert.equal(count(bob.out, `msg from alice: ${text}`), 1, "delivered intact, once");
    }
    assert.equal((await alice.finish()).code, 0, alice.transcript);
    assert.equal((await bob.finish()).code, 0, bob.transcript);

    const udpBytes = udp.flows.reduce((n, f) => n + concat(f.up).length + concat(f.down).length, 0);
    assert.ok(udpBytes > 2 * 20_000, `the messages went through the UDP relay proxy (${udpBytes} bytes)`);
    assert.ok(tcp.flows.length >= 3, "registration and both logins went through the TCP proxy");

    const dbFiles = ["authchat.db", "authchat.db-wal", "authchat.db-shm"];
    const readDb = async () => {
      const files: [string, Uint8Array][] = [];
      for (const name of dbFiles) {
        try {
          files.push([name, await Deno.readFile(join(data, name))]);
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
      return files;
    };
    const whileRunning = await readDb();
    assert.ok(whileRunning.some(([name]) => name === "authchat.db-wal"), "WAL file present while running");
    await server.stop();
    const stored = [
      ...whileRunning.map(([n, b]) => [`${n} (running)`, b] as [string, Uint8Array]),
      ...(await readDb()).map(([n, b]) => [`${n} (stopped)`, b] as [string, Uint8Array]),
    ];
    const captured: [string, Uint8Array][] = [
      ...tcp.flows.flatMap((f, i) => [[`tcp ${i} up`, concat(f.up)], [`tcp ${i} down`, concat(f.down)]]),
      ...udp.flows.flatMap((f, i) => [[`udp ${i} up`, concat(f.up)], [`udp ${i} down`, concat(f.down)]]),
      ["server log", encoder.encode(server.stderr + server.stdout)],
    ] as [string, Uint8Array][];

    for (const text of secrets) {
      for (const [name, bytes] of [...captured, ...stored]) {
        assert.equal(findSecret(bytes, encoder.encode(text)), null, `message text found in ${name}`);
      }
    }
    // Registration sent verifiers, not the password, which the key backups are sealed under.
    for (const [name, bytes] of [...captured, ...stored]) {
      assert.equal(findSecret(bytes, encoder.encode(PASSWORD)), null, `the password found in ${name}`);
    }

    const db = new DatabaseSync(join(data, "authchat.db"), { readOnly: true });
    let rows: { name: string; identity_key: Uint8Array; key_backup: string }[];
    try {
      rows = db.prepare("SELECT name, identity_key, key_backup FROM users ORDER BY name")
        .all() as typeof rows;
    } finally {
      db.close();
    }
    assert.deepEqual(rows.map((r) => r.name), ["alice", "bob"]);
    for (const row of rows) {
      assert.equal(typeof row.key_backup, "string");
      const publicKey = new Uint8Array(row.identity_key);
      // The search works: the public key is stored in the clear.
      assert.ok(
        stored.some(([, b]) => findSecret(b, publicKey) !== null),
        "public key found in the database",
      );
      const identity = await recoverIdentity(row.name, PASSWORD, {
        key: encodeBase64(publicKey),
        backup: JSON.parse(row.key_backup) as KeyBackupMessage,
      });
      const pkcs8 = await exportIdentityPrivate(identity);
      const seed = pkcs8.slice(-32);
      for (const [name, bytes] of [...stored, ...captured]) {
        assert.equal(findSecret(bytes, pkcs8), null, `${row.name}'s PKCS#8 private key found in ${name}`);
        assert.equal(findSecret(bytes, seed), null, `${row.name}'s private key seed found in ${name}`);
      }
    }
  } finally {
    for (const c of clients) await c.kill();
    await tcp.close();
    await udp.close();
    await server.kill();
  }
});
