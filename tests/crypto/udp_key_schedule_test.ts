import assert from "node:assert/strict";
import {
  deriveHandshakeSecrets,
  finishVerifyData,
  LABELS,
  nextTrafficSecret,
  trafficKeys,
  transcriptHash,
} from "../../lib/crypto/udp_key_schedule.ts";
import { assertBytesEqual } from "../_bytes.ts";

const encoder = new TextEncoder();

/** HKDF-SHA-256 as WebCrypto computes it: an implementation independent of the one under test. */
async function webHkdf(
  ikm: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  label: string,
  bytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(label) },
      key,
      bytes * 8,
    ),
  );
}

const SHARED = new Uint8Array(32).map((_, i) => i + 1);
const TH = new Uint8Array(32).map((_, i) => 200 - i);
const EMPTY = new Uint8Array(0);

Deno.test("deriveHandshakeSecrets follows the documented HKDF labels", async () => {
  const s = deriveHandshakeSecrets(SHARED, TH);
  const hs = await webHkdf(SHARED, TH, "authchat-udp/1 handshake secret", 32);
  assertBytesEqual(s.clientTraffic, await webHkdf(hs, EMPTY, "authchat-udp/1 c2s traffic", 32));
  assertBytesEqual(s.serverTraffic, await webHkdf(hs, EMPTY, "authchat-udp/1 s2c traffic", 32));
  assertBytesEqual(s.finishKey, await webHkdf(hs, EMPTY, "authchat-udp/1 finish key", 32));
  assertBytesEqual(
    s.channelBinding,
    await webHkdf(hs, EMPTY, "authchat-udp/1 exporter authchat-udp-exporter", 32),
  );
});

Deno.test("deriveHandshakeSecrets gives unrelated secrets for another transcript or shared secret", () => {
  const a = deriveHandshakeSecrets(SHARED, TH);
  const otherTh = TH.slice();
  otherTh[0]! ^= 1;
  const otherShared = SHARED.slice();
  otherShared[31]! ^= 1;
  for (const b of [deriveHandshakeSecrets(SHARED, otherTh), deriveHandshakeSecrets(otherShared, TH)]) {
    for (const name of ["clientTraffic", "serverTraffic", "finishKey", "channelBinding"] as const) {
      assert.notEqual(a[name].toHex(), b[name].toHex(), name);
    }
  }
  const all = Object.values(a).map((v) => v.toHex());
  assert.equal(new Set(all).size, all.length);
  assert.equal(new Set(Object.values(LABELS)).size, Object.values(LABELS).length);
  assert.throws(() => deriveHandshakeSecrets(SHARED.subarray(1), TH), RangeError);
});

Deno.test("trafficKeys and nextTrafficSecret follow the documented labels", async () => {
  const secret = SHARED;
  const k = trafficKeys(secret);
  assertBytesEqual(k.key, await webHkdf(secret, EMPTY, "authchat-udp/1 key", 32));
  assertBytesEqual(k.iv, await webHkdf(secret, EMPTY, "authchat-udp/1 iv", 12));
  assertBytesEqual(nextTrafficSecret(secret), await webHkdf(secret, EMPTY, "authchat-udp/1 key update", 32));
});

Deno.test("transcriptHash is SHA-256 of the INIT bytes then the ACCEPT's signed bytes", async () => {
  const init = new Uint8Array(65).fill(1);
  const accept = new Uint8Array(500).fill(2);
  const joined = new Uint8Array(565);
  joined.set(init);
  joined.set(accept, 65);
  assertBytesEqual(
    transcriptHash(init, accept),
    new Uint8Array(await crypto.subtle.digest("SHA-256", joined)),
  );
});

Deno.test("finishVerifyData is HMAC-SHA-256 of the transcript hash under the finish key", async () => {
  const key = await crypto.subtle.importKey("raw", SHARED, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  assertBytesEqual(finishVerifyData(SHARED, TH), new Uint8Array(await crypto.subtle.sign("HMAC", key, TH)));
});
