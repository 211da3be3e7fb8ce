import { badInputTable } from "./_bad_input_kit.ts";
import type { Row } from "./_bad_input_kit.ts";

const STATES: Row[] = [
  {
    name: "LOGIN before HELLO → OUT_OF_ORDER",
    hello: false,
    steps: [{ op: "LOGIN", id: 8, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abcdefgh" }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 8,
    message: /^Send HELLO first/,
  },
  {
    name: "HELLO with version 2 → UNSUPPORTED_VERSION",
    hello: false,
    steps: [{ op: "HELLO", id: 9, version: 2 }],
    code: "UNSUPPORTED_VERSION",
    fatal: false,
    id: 9,
    message: "Unsupported protocol version: 2 (this server speaks 1)",
  },
  {
    name: "PROOF with no exchange in progress → OUT_OF_ORDER",
    hello: true,
    steps: [{ op: "PROOF", id: 11, data: "c=biws,r=abcdefgh,p=AAAA" }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 11,
    message: /^No SCRAM exchange in progress/,
  },
  {
    name: "ACCESS when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "ACCESS", id: 12 }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 12,
  },
  {
    name: "LOGOUT when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "LOGOUT", id: 13 }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 13,
  },
  {
    name: "DELETE when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "DELETE", id: 35, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abcdefgh" }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 35,
  },
];

Deno.test("authchat server answers commands out of order with documented errors and keeps serving", (t) =>
  badInputTable(t, STATES));
