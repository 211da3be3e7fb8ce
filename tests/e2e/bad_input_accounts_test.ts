import assert from "node:assert/strict";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";
import { TEST_ITERATIONS } from "./_harness.ts";
import { clientVerifier, hello, RawClient } from "./_raw_client.ts";
import {
  badInputTable,
  brief,
  JUNK_SEALED,
  NUL_USER,
  passwdAfterLogin,
  sealedFor,
  sealedRegister,
  VERIFIER,
  verifierText,
} from "./_bad_input_kit.ts";
import type { ExtraStep, Row, RowEnv } from "./_bad_input_kit.ts";
import { ALICE_LOOK_ALIKES } from "../auth/_look_alikes.ts";

const ACCOUNTS: Row[] = [
  {
    // Session.#onRegister checks the name before it opens (or refuses) the secret.
    name: "REGISTER of a name with NUL and junk sealed → INVALID_USERNAME (the name is checked first)",
    hello: true,
    steps: [{ op: "REGISTER", id: 19, user: NUL_USER, sealed: JUNK_SEALED }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 19,
    reason: "prohibited_character",
  },
  {
    name:
      "REGISTER of a name with NUL and a verifier in clear on TCP → INVALID_USERNAME (the name is checked first)",
    hello: true,
    steps: [{ op: "REGISTER", id: 20, user: NUL_USER, verifier: VERIFIER }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 20,
    reason: "prohibited_character",
  },
  {
    name: "REGISTER of a name with NUL, correctly sealed → INVALID_USERNAME",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 21,
        user: NUL_USER,
        sealed: await sealedFor(env, "REGISTER", NUL_USER),
      });
    }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 21,
    reason: "prohibited_character",
  },
  {
    name: "REGISTER with a verifier in clear on plain TCP → CONFIDENTIALITY_REQUIRED",
    hello: true,
    steps: [{ op: "REGISTER", id: 23, user: "mallory", verifier: VERIFIER }],
    code: "CONFIDENTIALITY_REQUIRED",
    fatal: false,
    id: 23,
    message: "Verifier in clear on a plain connection: seal it to the server key or use TLS",
  },
  {
    name: "REGISTER with a password field, as before verifiers → BAD_MESSAGE, the field is unknown",
    hello: true,
    steps: [{ op: "REGISTER", id: 43, user: "mallory", password: "violet harbor 4821" }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 43,
    message: "Invalid field msg.password: unknown field",
  },
  {
    name: "REGISTER with both verifier and sealed → BAD_MESSAGE",
    hello: true,
    steps: [{ op: "REGISTER", id: 44, user: "mallory", verifier: VERIFIER, sealed: JUNK_SEALED }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 44,
    message: "Invalid field msg.verifier: send verifier or sealed, not both",
  },
  {
    name: "REGISTER with neither verifier nor sealed → BAD_MESSAGE",
    hello: true,
    steps: [{ op: "REGISTER", id: 45, user: "mallory" }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 45,
    message: "Invalid field msg.sealed: REGISTER needs verifier (TLS) or sealed",
  },
  {
    name: "REGISTER with garbage sealed → SEAL_INVALID",
    hello: true,
    steps: [{ op: "REGISTER", id: 24, user: "mallory", sealed: JUNK_SEALED }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 24,
    message: /^Sealed secret could not be opened/,
  },
  {
    name: "REGISTER sealed to a seal nonce already spent → SEAL_INVALID",
    hello: true,
    steps: [async (c, env) => {
      assert.ok(env.greeting);
      const spent = await c.request({ op: "REGISTER", id: 25, user: "mallory", sealed: JUNK_SEALED });
      assert.equal(spent.code, "SEAL_INVALID", JSON.stringify(spent));
      await sealedRegister(26, VERIFIER)(c, env);
    }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 26,
    message: /^No seal nonce in this session/,
  },
  {
    name: "REGISTER of an existing name in another case (ALICE) → USER_EXISTS",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 39,
        user: "ALICE",
        sealed: await sealedFor(env, "REGISTER", "ALICE"),
      });
    }],
    code: "USER_EXISTS",
    fatal: false,
    id: 39,
  },
  {
    // What a client of the old protocol sealed: the server takes no password, even sealed.
    name: "REGISTER with a sealed password instead of a verifier → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(40, "violet harbor 4821")],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 40,
    message: /^Invalid field msg\.verifier: Not a SCRAM-SHA-256 verifier/,
  },
  {
    name: "REGISTER with a sealed verifier of another iteration count than HELLO's → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(47, verifierText({ iterations: 600_000 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 47,
    message: `Invalid field msg.verifier: 600000 iterations, this server uses ${TEST_ITERATIONS} (see HELLO)`,
  },
  {
    name: "REGISTER with a sealed verifier whose salt is 15 bytes → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(49, verifierText({ saltBytes: 15 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 49,
    message: "Invalid field msg.verifier: a salt of 15 bytes, expected 16 to 64",
  },
  {
    name: "REGISTER with a sealed verifier whose salt is 65 bytes → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(51, verifierText({ saltBytes: 65 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 51,
    message: "Invalid field msg.verifier: a salt of 65 bytes, expected 16 to 64",
  },
  {
    name: "REGISTER with a sealed blob that is not UTF-8 → BAD_ENCODING",
    hello: true,
    steps: [sealedRegister(41, new Uint8Array([0x70, 0x77, 0xff, 0xfe, 0xc0, 0x80]))],
    code: "BAD_ENCODING",
    fatal: false,
    id: 41,
    message: "Invalid UTF-8 in the sealed verifier",
  },
  {
    name: "REGISTER with a verifier sealed for another user name → SEAL_INVALID",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 42,
        user: "mallory",
        sealed: await sealedFor(env, "REGISTER", "trudy"),
      });
    }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 42,
  },
  {
    name: "PASSWD with the new verifier in clear on plain TCP → CONFIDENTIALITY_REQUIRED, still logged in",
    hello: true,
    steps: [passwdAfterLogin(52, () => Promise.resolve({ verifier: VERIFIER }))],
    code: "CONFIDENTIALITY_REQUIRED",
    fatal: false,
    id: 52,
    loggedInAs: "alice",
  },
  {
    name:
      "PASSWD with a sealed verifier of another iteration count than HELLO's → BAD_MESSAGE, still logged in",
    hello: true,
    steps: [passwdAfterLogin(53, async (env) => ({
      sealed: await sealedFor(env, "PASSWD", "alice", verifierText({ iterations: 8192 })),
    }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 53,
    message: `Invalid field msg.verifier: 8192 iterations, this server uses ${TEST_ITERATIONS} (see HELLO)`,
    loggedInAs: "alice",
  },
];

/** REGISTER of `user` with a correctly sealed verifier. */
function registerSealed(id: number, user: string): (c: RawClient, env: RowEnv) => Promise<void> {
  return async (c, env) => {
    await c.send({ op: "REGISTER", id, user, sealed: await sealedFor(env, "REGISTER", user) });
  };
}

/** Names that look like alice's (issue 9), and names the PRECIS rules of new names refuse. */
const LOOK_ALIKES: Row[] = [
  ...ALICE_LOOK_ALIKES.map(([user, what], i): Row => ({
    name: `REGISTER of ${what} in ${user} next to alice → USER_EXISTS, reason confusable, alice not named`,
    hello: true,
    steps: [registerSealed(60 + i, user)],
    code: "USER_EXISTS",
    fatal: false,
    id: 60 + i,
    reason: "confusable",
    message: `User name looks like an existing account's: ${user}`,
  })),
  {
    name: "REGISTER of aIice (capital I for l) next to alice → USER_EXISTS, reason confusable",
    hello: true,
    steps: [registerSealed(66, "aIice")],
    code: "USER_EXISTS",
    fatal: false,
    id: 66,
    reason: "confusable",
  },
  {
    name: "REGISTER of fullwidth ａｌｉｃｅ → USER_EXISTS: it is alice (PRECIS width mapping)",
    hello: true,
    steps: [registerSealed(67, "\uFF41\uFF4C\uFF49\uFF43\uFF45")],
    code: "USER_EXISTS",
    fatal: false,
    id: 67,
    message: "User already exists: alice",
  },
  {
    name:
      "REGISTER of a name with a symbol (I♥NY) and junk sealed → INVALID_USERNAME (the name is checked first)",
    hello: true,
    steps: [{ op: "REGISTER", id: 68, user: "I\u2665NY", sealed: JUNK_SEALED }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 68,
    reason: "disallowed_character",
    message: "Invalid username: U+2665 is not allowed in a new user name " +
      "(letters, digits, combining marks and printable ASCII only)",
  },
  {
    name: "REGISTER of a name with a right-to-left override, correctly sealed → INVALID_USERNAME",
    hello: true,
    steps: [registerSealed(69, "evil\u202Eexe")],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 69,
  },
  {
    name:
      "REGISTER of a name with a zero width joiner, correctly sealed → INVALID_USERNAME disallowed_character",
    hello: true,
    steps: [registerSealed(70, "ali\u200Dce")],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 70,
    reason: "disallowed_character",
  },
  {
    name: "REGISTER of a name that breaks the Bidi Rule (Arabic-Indic digits first) → INVALID_USERNAME bidi",
    hello: true,
    steps: [registerSealed(71, "\u0661\u0662")],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 71,
    reason: "bidi",
  },
];

/** Six names that look alike, registered at once: the check and the insert are one transaction. */
const OSCARS = ["oscar", "\u043Escar", "os\u0441ar", "\u03BFscar", "0scar", "\u00F3scar"];

const CONCURRENT_LOOK_ALIKES: ExtraStep = {
  name:
    "concurrent REGISTER of 6 look-alike names on 6 connections → one REGISTER, the rest USER_EXISTS confusable",
  run: async (port) => {
    const clients = await Promise.all(OSCARS.map(() => RawClient.connect(port)));
    try {
      const messages = await Promise.all(clients.map(async (c, i) => {
        const env: RowEnv = { greeting: await hello(c), inFlight: [] };
        const user = OSCARS[i]!;
        const verifier = await clientVerifier("violet harbor 4821", env.greeting!);
        return { op: "REGISTER", id: 72, user, sealed: await sealedFor(env, "REGISTER", user, verifier) };
      }));
      await Promise.all(clients.map((c, i) => c.send(messages[i])));
      const replies = await Promise.all(clients.map((c) => c.reply()));
      const outcomes = replies.map((r) => r.op === "ERROR" ? `${r.code} ${r.reason}` : String(r.op)).sort();
      assert.deepEqual(outcomes, ["REGISTER", ...Array(5).fill("USER_EXISTS confusable")], brief(replies));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  },
};

const CONCURRENT_REGISTER: ExtraStep = {
  name: "concurrent REGISTER of one name on 6 connections → one REGISTER, the rest USER_EXISTS",
  run: async (port) => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(port)));
    try {
      const messages = await Promise.all(clients.map(async (c) => {
        const env: RowEnv = { greeting: await hello(c), inFlight: [] };
        return {
          op: "REGISTER",
          id: 50,
          user: "racer",
          sealed: await sealedFor(
            env,
            "REGISTER",
            "racer",
            await clientVerifier("violet harbor 4821", env.greeting!),
          ),
        };
      }));
      await Promise.all(clients.map((c, i) => c.send(messages[i])));
      const replies = await Promise.all(clients.map((c) => c.reply()));
      const outcomes = replies.map((r) => r.op === "ERROR" ? String(r.code) : String(r.op)).sort();
      assert.deepEqual(outcomes, ["REGISTER", ...Array(5).fill("USER_EXISTS")], brief(replies));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  },
};

Deno.test("authchat server answers bad registrations and password changes with documented errors and keeps serving", (t) =>
  badInputTable(t, ACCOUNTS, { extra: [CONCURRENT_REGISTER] }));

Deno.test("authchat server refuses look-alike and PRECIS-refused names at REGISTER and keeps serving", (t) =>
  badInputTable(t, LOOK_ALIKES, { extra: [CONCURRENT_LOOK_ALIKES] }));

clusterTest(
  "authchat server on PostgreSQL answers bad registrations and password changes with documented errors and keeps serving",
  ["postgres"],
  async (t) => {
    await using db = await freshPostgresDatabase();
    await badInputTable(t, ACCOUNTS, { extra: [CONCURRENT_REGISTER], database: db.url });
  },
);

clusterTest(
  "authchat server on PostgreSQL refuses look-alike and PRECIS-refused names at REGISTER and keeps serving",
  ["postgres"],
  async (t) => {
    await using db = await freshPostgresDatabase();
    await badInputTable(t, LOOK_ALIKES, { extra: [CONCURRENT_LOOK_ALIKES], database: db.url });
  },
);
