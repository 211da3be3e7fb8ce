import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import { FrameDecoder, MAX_FRAME_BYTES } from "../../lib/codec/frame.ts";
import { runCli, tempDir, TEST_ITERATIONS } from "./_harness.ts";
import { jsonFrame } from "./_raw_client.ts";

/** Serve one client connection with a scripted fake server that speaks just enough of the protocol. */
async function runAgainstFakeServer(
  home: string,
  script: {
    challenge: (clientNonce: string) => string;
    loginReply: () => string;
  },
): Promise<{ code: number; stderr: string; ops: string[] }> {
  const pair = await crypto.subtle.generateKey(
    { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  );
  const sealKey = encodeBase64(new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey)));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ops: string[] = [];
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const decoder = new FrameDecoder();
      const buffer = new Uint8Array(MAX_FRAME_BYTES);
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) return;
        for (const payload of decoder.push(buffer.subarray(0, n))) {
          const msg = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
          const op = String(msg.op);
          let reply: Record<string, unknown>;
          // Keepalives are answered and left out of the record of what the client asked.
          if (op !== "PING") ops.push(op);
          if (op === "PING") reply = { op: "PONG" };
          else if (op === "HELLO") {
            reply = {
              op: "HELLO",
              server: "fake",
              version: 1,
              versions: [1],
              mechanisms: ["SCRAM-SHA-256"],
              confidential: false,
              seal_key: sealKey,
              seal_nonce: "bm9uY2Vub25jZQ==",
              iterations: TEST_ITERATIONS,
              password_min_length: 10,
            };
          } else if (op === "LOGIN") {
            const nonce = /,r=([^,]+)/.exec(String(msg.data))?.[1] ?? "";
            reply = { op: "CHALLENGE", data: script.challenge(nonce) };
          } else if (op === "PROOF") {
            reply = { op: "LOGIN", user: "x", data: script.loginReply() };
          } else {
            reply = { op };
          }
          await conn.write(jsonFrame({ ...reply, id: msg.id }));
        }
      }
    } finally {
      conn.close();
    }
  })();
  try {
    const passwordFile = join(home, "x.pw");
    await Deno.writeTextFile(passwordFile, "violet harbor 4821\n");
    const port = (listener.addr as Deno.NetAddr).port;
    const result = await runCli(
      "client",
      ["--port", String(port), "--user", "x", "--password-file", passwordFile, "--exec", "login"],
      { env: { XDG_CONFIG_HOME: home } },
    );
    return { code: result.code, stderr: result.stderr, ops };
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
}

const SALT = encodeBase64(new Uint8Array(16).fill(7));

Deno.test("authchat client refuses a server asking for an absurd iteration count", async () => {
  await using dir = await tempDir();
  const result = await runAgainstFakeServer(dir.path, {
    challenge: (nonce) => `r=${nonce}fakeservernonce,s=${SALT},i=1000000000`,
    loginReply: () => "v=AAAA",
  });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /Refusing iteration count: 1000000000 is not within 4096\.\.10000000/);
  assert.deepEqual(result.ops.slice(0, 2), ["HELLO", "LOGIN"]);
  assert.ok(!result.ops.includes("PROOF"), `the client went on: ${result.ops.join(" ")}`);
});

Deno.test("authchat client rejects a server whose ServerSignature is wrong", async () => {
  await using dir = await tempDir();
  const result = await runAgainstFakeServer(dir.path, {
    challenge: (nonce) => `r=${nonce}fakeservernonce,s=${SALT},i=4096`,
    loginReply: () => `v=${encodeBase64(new Uint8Array(32).fill(1))}`,
  });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /Server signature did not verify/);
  assert.doesNotMatch(result.stderr, /logged in as/);
  assert.deepEqual(result.ops.slice(0, 3), ["HELLO", "LOGIN", "PROOF"]);
});
