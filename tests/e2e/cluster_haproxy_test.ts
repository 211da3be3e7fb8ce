/**
 * docs/DEPLOY.md's deployment, run: nodes configured with the document's node configuration, behind HAProxy
 * running the document's configuration, both taken from the document's fenced blocks with only the addresses
 * and ports of this machine put in (and every address and port the document names checked to be replaced), so
 * the document and this test cannot drift apart. All addresses are 127.0.0.1 here: the nodes' UDP ports are
 * reachable at the address the clients connect to without the forwarding DEPLOY.md sets up between machines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { clusterTest, haproxyPath } from "../_cluster_services.ts";
import { decodePem } from "../../lib/crypto/pem.ts";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { runProgram, tempDir } from "./_harness.ts";
import type { ServerProcess } from "./_harness.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import { hello, RawClient, tlsHello } from "./_raw_client.ts";
import { TestCluster } from "./_test_cluster.ts";

const DEPLOY = fileURLToPath(new URL("../../docs/DEPLOY.md", import.meta.url));
const PASSWORD = "harbor lantern quiver 12";

/** The one fenced block of DEPLOY.md whose info string is `info`. */
async function deployBlock(info: string): Promise<string> {
  const text = await Deno.readTextFile(DEPLOY);
  const blocks = [...text.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === info);
  assert.equal(blocks.length, 1, `one \`\`\`${info} block in docs/DEPLOY.md`);
  return blocks[0]![2]!;
}

/**
 * Replace each of `from` in `text` by its replacement, requiring each to occur exactly `times` (so a changed
 * document fails here instead of leaving an address of the example in the test's configuration).
 */
function substitute(text: string, pairs: [from: string, to: string, times: number][]): string {
  for (const [from, to, times] of pairs) {
    const found = text.split(from).length - 1;
    assert.equal(
      found,
      times,
      `"${from}" occurs ${found} times in docs/DEPLOY.md's block, expected ${times}`,
    );
    text = text.replaceAll(from, to);
  }
  return text;
}

/** A port nothing listens on now. */
function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** The port of the metrics address in a node's ready line. */
function metricsPort(node: ServerProcess): number {
  const port = Number(/ metrics=127\.0\.0\.1:(\d+)/.exec(node.line)?.[1]);
  assert.ok(port > 0, node.line);
  return port;
}

/** HAProxy in the foreground, with its output (its log, stdout) kept. */
class Haproxy {
  #child: Deno.ChildProcess;
  #output = "";
  #pumps: Promise<void>[];

  constructor(program: string, config: string) {
    this.#child = new Deno.Command(program, {
      args: ["-db", "-f", config],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [this.#pump(this.#child.stdout), this.#pump(this.#child.stderr)];
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) this.#output += decoder.decode(chunk, { stream: true });
  }

  /** Everything it printed so far. */
  get output(): string {
    return this.#output;
  }

  /**
   * Wait for a line of its output (a guard against a hang, not a speed target).
   *
   * @param pattern What to find.
   * @param timeoutMs How long to wait.
   */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const start = Date.now();
    while (!pattern.test(this.#output)) {
      if (Date.now() - start > timeoutMs) throw new Error(`haproxy printed no ${pattern}:\n${this.#output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Wait until `port` accepts connections (or HAProxy exited). */
  async listening(port: number): Promise<void> {
    const exited = this.#child.status.then(() => true);
    for (let i = 0; i < 200; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return;
      } catch {
        if (await Promise.race([exited, new Promise((r) => setTimeout(r, 50, false))])) break;
      }
    }
    throw new Error(`haproxy does not listen on ${port}: ${await this.stop()}`);
  }

  /** Stop it (SIGTERM: at once) and return what it printed. */
  async stop(): Promise<string> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await this.#child.status;
    await Promise.all(this.#pumps);
    return this.#output;
  }
}

clusterTest(
  "Clients log in over TCP and TLS (SCRAM-SHA-256-PLUS) through HAProxy configured as docs/DEPLOY.md shows, and chat across nodes",
  ["postgres", "nats", "haproxy"],
  async () => {
    await using dir = await tempDir();
    const nodeYaml = await deployBlock("yaml");
    await using cluster = await TestCluster.start(dir.path, {
      // Flags beat the file: the ports (0: free ones, three nodes on one machine) and the metrics port.
      args: ["--metrics-port", "0"],
      configure: async (n, { database, nats }) => {
        const url = new URL(database.url);
        const password = decodeURIComponent(url.password);
        url.password = "";
        const config = join(dir.path, `node${n}.yaml`);
        await Deno.writeTextFile(
          config,
          substitute(nodeYaml, [
            ["10.0.0.11", "127.0.0.1", 2],
            ["proxy_protocol_from: 10.0.0.10", "proxy_protocol_from: 127.0.0.1", 1],
            ["postgres://authchat@10.0.0.5:5432/authchat", url.href, 1],
            ["nats://10.0.0.5:4222", nats, 1],
            ["node_id: node1", `node_id: node${n}`, 1],
          ]),
        );
        // As DEPLOY.md starts a node: the database's password in PGPASSWORD, not in the file.
        return { args: ["--config", config], env: { PGPASSWORD: password } };
      },
    });
    const nodes = cluster.nodes;
    const front = { tcp: freePort(), tls: freePort() };
    const node = (n: number) => cluster.node(n);
    const haproxyConfig = join(dir.path, "haproxy.cfg");
    await Deno.writeTextFile(
      haproxyConfig,
      substitute(await deployBlock("haproxy"), [
        ["bind :1991", `bind 127.0.0.1:${front.tcp}`, 1],
        ["bind :1992", `bind 127.0.0.1:${front.tls}`, 1],
        ...[1, 2, 3].flatMap((n): [string, string, number][] => [
          [
            `10.0.0.1${n}:1991 send-proxy-v2 check port 9464`,
            `127.0.0.1:${node(n).tcpPort} send-proxy-v2 check port ${metricsPort(node(n))}`,
            1,
          ],
          [`10.0.0.1${n}:1992`, `127.0.0.1:${node(n).tlsPort}`, 1],
        ]),
      ]),
    );
    const haproxy = haproxyPath()!;
    const check = await runProgram(haproxy, ["-c", "-f", haproxyConfig]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const balancer = new Haproxy(haproxy, haproxyConfig);
    const clients: ChatClient[] = [];
    let stopped = 0;
    try {
      await balancer.listening(front.tcp);
      await balancer.listening(front.tls);

      const passwordFile = await registerUsers(
        front.tcp,
        dir.path,
        ["alice", "bob", "carol", "dave"],
        PASSWORD,
      );
      const login = async (user: string, transport: "tcp" | "tls", name = user) => {
        const client = await ChatClient.login({
          port: front[transport],
          user,
          passwordFile,
          configDir: join(dir.path, `cfg-${name}`),
          args: transport === "tls" ? ["--tls"] : [],
        });
        clients.push(client);
        return client;
      };
      /** The node (1-based) whose log has this user's latest login over this transport. */
      const nodeOf = async (user: string, transport: "tcp" | "tls", except: number[] = []) => {
        const found: number[] = [];
        for (const [i, n] of nodes.entries()) {
          if (except.includes(i + 1)) continue;
          if (new RegExp(`login_ok .*user=${user} transport=${transport}`).test(await n.settledLog())) {
            found.push(i + 1);
          }
        }
        assert.equal(found.length, 1, `${user} logged in on one node: ${found}`);
        return found[0]!;
      };

      // leastconn: the second connection of a backend goes to another node than the first.
      const alice = await login("alice", "tcp");
      const bob = await login("bob", "tcp");
      const carol = await login("carol", "tls");
      const dave = await login("dave", "tls");
      const on = {
        alice: await nodeOf("alice", "tcp"),
        bob: await nodeOf("bob", "tcp"),
        carol: await nodeOf("carol", "tls"),
        dave: await nodeOf("dave", "tls"),
      };
      assert.notEqual(on.alice, on.bob, JSON.stringify(on));
      assert.notEqual(on.carol, on.dave, JSON.stringify(on));

      // TLS went through to the nodes: the mechanisms offered include -PLUS (which the client then uses, or
      // refuses to log in), and the certificate the client pinned is the nodes' own.
      const helloLine = await carol.expectOk("hello", /^server /);
      assert.match(carol.out[helloLine]!, /mechanisms SCRAM-SHA-256-PLUS SCRAM-SHA-256, TLS$/);
      const cert = await Deno.readTextFile(join(cluster.dataDirs[0]!, "server-cert.pem"));
      const pinned = await Deno.readTextFile(join(dir.path, "cfg-carol", "known_hosts"));
      const expected = `127.0.0.1:${front.tls} tls ${await fingerprint(decodePem(cert, "CERTIFICATE"))}`;
      assert.ok(pinned.split("\n").includes(expected), `${pinned} pins ${expected}`);

      for (const client of [alice, bob, carol, dave]) {
        const end = await client.expectOk("list", /^\d+ online$/);
        assert.equal(client.out[end], "4 online", client.transcript);
      }
      await alice.expectOk("send bob over tcp, across nodes", /^delivered$/);
      await carol.expectOk("send dave over tls, across nodes", /^delivered$/);
      await dave.expectOk("send alice from tls to tcp", /^delivered$/);
      await bob.waitFor("out", /^msg from alice: over tcp, across nodes$/);
      await dave.waitFor("out", /^msg from carol: over tls, across nodes$/);
      await alice.waitFor("out", /^msg from dave: from tls to tcp$/);

      // The nodes see each client's own address (HAProxy's PROXY header), not HAProxy's: over TCP and TLS.
      await using raw = await RawClient.connect(front.tcp, { from: "127.0.0.7" });
      await hello(raw);
      assert.equal((await tlsHello(front.tls, "127.0.0.8", null))?.op, "HELLO");
      const logs = (await Promise.all(nodes.map((n) => n.settledLog()))).join("\n");
      assert.match(logs, /connect session=\d+ ip=127\.0\.0\.7 transport=tcp/);
      assert.match(logs, /connect session=\d+ ip=127\.0\.0\.8 transport=tls/);
      assert.doesNotMatch(logs, /proxy_header_invalid/);

      // Upgrading alice's node: SIGTERM. Its sessions are told, and a new login through HAProxy reaches
      // another node at once (a refused connection is redispatched) and chats with bob.
      stopped = on.alice;
      assert.equal((await node(stopped).stop()).code, 0, node(stopped).stderr);
      await alice.waitFor("err", /^server: .*\(SHUTDOWN\)$/);
      // Its checks fail (/healthz answers no more) and HAProxy takes it out, in both backends.
      for (const backend of ["authchat_tcp", "authchat_tls"]) {
        await balancer.waitFor(new RegExp(`Server ${backend}/node${stopped} is DOWN`));
      }
      const again = await login("alice", "tcp", "alice-again");
      const now = await nodeOf("alice", "tcp", [stopped]);
      assert.notEqual(now, stopped);
      await again.expectOk("send bob after the upgrade", /^delivered$/);
      await bob.waitFor("out", /^msg from alice: after the upgrade$/);

      for (
        const [client, line] of [
          [bob, "msg from alice: over tcp, across nodes"],
          [dave, "msg from carol: over tls, across nodes"],
          [alice, "msg from dave: from tls to tcp"],
          [bob, "msg from alice: after the upgrade"],
        ] as const
      ) {
        assert.equal(
          client.out.filter((l) => l === line).length,
          1,
          `exactly once: ${line}\n${client.transcript}`,
        );
      }
      for (const client of [bob, again]) assert.equal((await client.finish()).code, 0, client.transcript);
    } finally {
      for (const client of clients) await client.kill();
      await balancer.stop();
    }
    // Every other node passed every check all along (a check HAProxy could not make, or a /healthz that is
    // not 200, would have taken them out within 4 s).
    const down = [...balancer.output.matchAll(/Server \S+\/(node\d) is DOWN/g)].map((m) => m[1]);
    assert.deepEqual(new Set(down), new Set([`node${stopped}`]), balancer.output);
    for (const status of await cluster.stop()) assert.equal(status.code, 0);
  },
);
