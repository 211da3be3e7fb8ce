import assert from "node:assert/strict";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";
import { scramLogin } from "./_raw_client.ts";
import { ALICE, badInputTable, beginLogin, JUNK_SEALED, mechanisms, NUL_USER } from "./_bad_input_kit.ts";
import type { Row } from "./_bad_input_kit.ts";

const SCRAM: Row[] = [
  {
    name: "replayed client-final after LOGOUT and a new LOGIN → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const { clientFinal } = await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      assert.equal((await c.request({ op: "LOGOUT", id: 4 })).op, "LOGOUT");
      await beginLogin(c, env, ALICE, 5);
      await c.send({ op: "PROOF", id: 6, data: clientFinal });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 6,
    scram: "other-error",
    message: /nonce does not match/,
  },
  {
    name: "replayed client-final with the same client nonce in a new exchange → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const nonce = "replayed-client-nonce-0123456789";
      const first = await beginLogin(c, env, { ...ALICE, nonce }, 4);
      const clientFinal = await first.scram.final(first.serverFirst);
      const ok = await c.request({ op: "PROOF", id: 5, data: clientFinal });
      assert.equal(ok.op, "LOGIN", JSON.stringify(ok));
      await beginLogin(c, env, { ...ALICE, nonce }, 6);
      await c.send({ op: "PROOF", id: 7, data: clientFinal });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 7,
  },
  {
    name: "client-final with a wrong nonce → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const final = await scram.final(serverFirst);
      // The last character changed (to X, or to Y when it was X: one nonce in 64 ends in X).
      const tampered = final.replace(
        /,r=([^,]+),/,
        (_, nonce: string) => `,r=${nonce.slice(0, -1)}${nonce.endsWith("X") ? "Y" : "X"},`,
      );
      assert.notEqual(tampered, final);
      await c.send({ op: "PROOF", id: 5, data: tampered });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 5,
    scram: "other-error",
  },
  {
    name: "m= extension in client-first → BAD_SCRAM extensions-not-supported",
    hello: true,
    steps: [{ op: "LOGIN", id: 14, mechanism: "SCRAM-SHA-256", data: "n,,m=ext,n=alice,r=abcdefgh" }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 14,
    scram: "extensions-not-supported",
  },
  {
    name: "client-first with bad saslname escaping (n=a=ZZb) → BAD_SCRAM",
    hello: true,
    steps: [{ op: "LOGIN", id: 15, mechanism: "SCRAM-SHA-256", data: "n,,n=a=ZZb,r=abcdefgh" }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 15,
    scram: "invalid-username-encoding",
  },
  {
    name: "unsupported mechanism SCRAM-SHA-1 → UNSUPPORTED_MECHANISM",
    hello: true,
    steps: [{ op: "LOGIN", id: 16, mechanism: "SCRAM-SHA-1", data: "n,,n=alice,r=abcdefgh" }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 16,
    message: /^Unsupported mechanism: "SCRAM-SHA-1"/,
  },
  {
    name: "SCRAM-SHA-256-PLUS on plain TCP → UNSUPPORTED_MECHANISM",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 17,
      mechanism: "SCRAM-SHA-256-PLUS",
      data: "p=tls-server-end-point,,n=alice,r=abcdefgh",
    }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 17,
  },
  {
    name: "p=tls-server-end-point flag with SCRAM-SHA-256 on TCP → CHANNEL_BINDING",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 18,
      mechanism: "SCRAM-SHA-256",
      data: "p=tls-server-end-point,,n=alice,r=abcdefgh",
    }],
    code: "CHANNEL_BINDING",
    fatal: false,
    id: 18,
    scram: "channel-binding-not-supported",
  },
  {
    name: "wrong proof after a successful login on the same connection → AUTH_FAILED and logged out",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      const before = await c.request({ op: "IS_LOGGED", id: 4 });
      assert.deepEqual(before, { op: "IS_LOGGED", id: 4, logged_in: true, user: "alice" });
      const { scram, serverFirst } = await beginLogin(c, env, { ...ALICE, password: "wrong password 42" }, 5);
      await c.send({ op: "PROOF", id: 6, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 6,
    scram: "invalid-proof",
  },
  {
    name: "unsupported mechanism after a successful login → UNSUPPORTED_MECHANISM and logged out",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      await c.send({ op: "LOGIN", id: 4, mechanism: "SCRAM-SHA-1", data: "n,,n=alice,r=abcdefgh" });
    }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 4,
  },
  {
    name: "another command during a SCRAM exchange → OUT_OF_ORDER, exchange abandoned",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const abandoned = await c.request({ op: "ACCESS", id: 5 });
      assert.equal(abandoned.code, "OUT_OF_ORDER", JSON.stringify(abandoned));
      assert.equal(abandoned.id, 5);
      // The right proof is now too late: the exchange is gone.
      await c.send({ op: "PROOF", id: 6, data: await scram.final(serverFirst) });
    }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 6,
    message: /^No SCRAM exchange in progress/,
  },
  {
    name: "PASSWD proving another user's password → BAD_SCRAM, still logged in",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      await c.send({
        op: "PASSWD",
        id: 36,
        mechanism: "SCRAM-SHA-256",
        data: "n,,n=bob,r=abcdefgh",
        sealed: JUNK_SEALED,
      });
    }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 36,
    loggedInAs: "alice",
  },
  {
    name: "client-final without a proof → BAD_SCRAM",
    hello: true,
    steps: [async (c, env) => {
      const { serverFirst } = await beginLogin(c, env, ALICE, 4);
      const nonce = /^r=([^,]+)/.exec(serverFirst)?.[1];
      await c.send({ op: "PROOF", id: 37, data: `c=biws,r=${nonce}` });
    }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 37,
    message: "Malformed client-final-message: missing proof",
  },
  {
    name: "client-final claiming y,, after an n,, client-first → CHANNEL_BINDING",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const final = await scram.final(serverFirst);
      await c.send({ op: "PROOF", id: 38, data: final.replace(/^c=biws,/, "c=eSws,") });
    }],
    code: "CHANNEL_BINDING",
    fatal: false,
    id: 38,
    scram: "channel-bindings-dont-match",
  },
  {
    name: "LOGIN with NUL in the SCRAM user name → INVALID_USERNAME",
    hello: true,
    steps: [{ op: "LOGIN", id: 22, mechanism: "SCRAM-SHA-256", data: `n,,n=${NUL_USER},r=abcdefgh` }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 22,
    reason: "prohibited_character",
  },
  {
    name: "SQL in a LOGIN user name with spaces (alice'; DROP TABLE users;--) → INVALID_USERNAME",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 27,
      mechanism: "SCRAM-SHA-256",
      data: "n,,n=alice'; DROP TABLE users;--,r=abcdefgh",
    }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 27,
    reason: "whitespace",
  },
  {
    name: "SQL in a LOGIN user name without spaces → CHALLENGE, then AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const user = "robert');DROP/**/TABLE/**/users;--";
      const { scram, serverFirst } = await beginLogin(c, env, { user, password: "violet harbor 4821" }, 4);
      assert.match(serverFirst, /^r=[^,]+,s=[^,]+,i=4096$/);
      await c.send({ op: "PROOF", id: 5, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 5,
    scram: "invalid-proof",
  },
  {
    name: "LOGIN with a device_token that is not base64 → BAD_MESSAGE",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 28,
      mechanism: "SCRAM-SHA-256",
      data: "n,,n=alice,r=abcdefgh",
      device_token: "not a token!",
    }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 28,
    message: /^Invalid field msg\.device_token: /,
  },
  {
    name: "LOGIN with a 1 MB device_token → BAD_MESSAGE",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 29,
      mechanism: "SCRAM-SHA-256",
      data: "n,,n=alice,r=abcdefgh",
      device_token: "A".repeat(60_000),
    }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 29,
    message: /^Invalid field msg\.device_token: longer than 256 characters/,
  },
  {
    name: "LOGIN with a device_token that is an object → BAD_MESSAGE",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 30,
      mechanism: "SCRAM-SHA-256",
      data: "n,,n=alice,r=abcdefgh",
      device_token: { v: 1, user: "alice" },
    }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 30,
  },
  {
    name:
      "forged device token (the layout right, the MAC random) is ignored: a wrong proof fails → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const forged = new Uint8Array(73);
      crypto.getRandomValues(forged);
      forged[0] = 1;
      new DataView(forged.buffer).setBigUint64(1, 1n);
      new DataView(forged.buffer).setBigUint64(17, 2n ** 60n);
      const deviceToken = forged.toBase64();
      const { scram, serverFirst } = await beginLogin(
        c,
        env,
        { ...ALICE, password: "wrong", deviceToken },
        31,
      );
      await c.send({ op: "PROOF", id: 32, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 32,
    scram: "invalid-proof",
  },
  {
    name:
      "alice's own device token with a wrong password → AUTH_FAILED (the token exempts, it does not log in)",
    hello: true,
    steps: [async (c, env) => {
      const { reply } = await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      assert.equal(typeof reply.device_token, "string");
      assert.equal((await c.request({ op: "LOGOUT", id: 4 })).op, "LOGOUT");
      const deviceToken = String(reply.device_token);
      const { scram, serverFirst } = await beginLogin(
        c,
        env,
        { ...ALICE, password: "wrong", deviceToken },
        33,
      );
      await c.send({ op: "PROOF", id: 34, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 34,
    scram: "invalid-proof",
  },
];

Deno.test("authchat server answers bad SCRAM exchanges with documented errors and keeps serving", (t) =>
  badInputTable(t, SCRAM));

clusterTest(
  "authchat server on PostgreSQL answers bad SCRAM exchanges with documented errors and keeps serving",
  ["postgres"],
  async (t) => {
    await using db = await freshPostgresDatabase();
    await badInputTable(t, SCRAM, { database: db.url });
  },
);
