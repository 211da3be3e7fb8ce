/**
 * Micro-benchmarks of the hot paths a login goes through (`deno task
 * bench:micro`). The load harness, logins per second against the runtime's
 * floor and the rest, is `bench/run.ts` (`deno task bench`).
 *
 * @module
 */

import { ScramClient } from "../../lib/auth/scram_client.ts";
import { ScramServer } from "../../lib/auth/scram_server.ts";
import { encodeFrame, FrameDecoder } from "../../lib/codec/frame.ts";
import { decodeClientMessage, encodeMessage } from "../../lib/codec/messages.ts";
import { DeviceTokenKey } from "../../lib/crypto/device_token.ts";
import { createVerifier } from "../../lib/crypto/scram_verifier.ts";

const PASSWORD = "benchmark pass phrase 1";
const verifier = await createVerifier(PASSWORD, { iterations: 4096 });
const cache = new Map();
const frames = encodeMessage({ op: "IS_LOGGED", id: 1 });
const tokenKey = await DeviceTokenKey.derive(new Uint8Array(32));
const subject = { accountId: 1, nameKey: "alice", storedKey: verifier.storedKey };
const { token } = await tokenKey.issue(subject, Date.now());

Deno.bench("FrameDecoder + decodeClientMessage, one small request", () => {
  const decoder = new FrameDecoder();
  for (const payload of decoder.push(frames)) decodeClientMessage(payload);
});

Deno.bench("encodeFrame 1 KiB", () => {
  encodeFrame(new Uint8Array(1024));
});

Deno.bench("SCRAM exchange, server side, client SaltedPassword cached", async (b) => {
  const server = new ScramServer();
  const client = new ScramClient({
    username: "alice",
    password: PASSWORD,
    serverMechanisms: server.mechanisms,
    cache,
  });
  b.start();
  const exchange = server.begin(server.parseFirst(client.mechanism, client.first), verifier);
  const final = await client.final(exchange.serverFirst);
  client.verify(await exchange.finish(final));
  b.end();
});

Deno.bench("DeviceTokenKey.issue (every successful LOGIN and PASSWD)", async () => {
  await tokenKey.issue(subject, Date.now());
});

Deno.bench("DeviceTokenKey.check (every LOGIN that shows a token)", async () => {
  await tokenKey.check(token, subject, Date.now());
});
