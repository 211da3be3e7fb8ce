import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { decodePem, encodePem } from "../../lib/crypto/pem.ts";
import { openSealed, seal, sealContext } from "../../lib/crypto/seal.ts";
import {
  existingIdentityFiles,
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import type { IdentityPaths } from "../../lib/crypto/server_identity.ts";

// One identity shared by the read-only tests: each generation makes an RSA-3072 key (about two seconds).
const root = await Deno.makeTempDir({ prefix: "authchat-identity-" });
const sharedDir = join(root, "shared", "data");
const shared = identityPaths(sharedDir);
const written = await generateServerIdentity(shared, { hostnames: ["chat.example.com"] });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

const allFiles = (p: IdentityPaths) => [p.certFile, p.keyFile, p.sealPrivateFile, p.sealPublicFile];

function sha256Fingerprint(der: Uint8Array): string {
  return "SHA256:" + createHash("sha256").update(der).digest("base64").replace(/=+$/, "");
}

async function readAll(p: IdentityPaths): Promise<string[]> {
  return await Promise.all(allFiles(p).map((f) => Deno.readTextFile(f)));
}

/** A fresh directory holding a copy of the shared identity's files. */
async function copyOfShared(name: string): Promise<IdentityPaths> {
  const dir = join(root, name);
  await Deno.mkdir(dir, { recursive: true });
  const paths = identityPaths(dir);
  const from = allFiles(shared);
  const to = allFiles(paths);
  for (let i = 0; i < from.length; i++) await Deno.copyFile(from[i]!, to[i]!);
  return paths;
}

Deno.test("identityPaths names the four files inside the data directory", () => {
  assert.deepEqual(identityPaths("/srv/data"), {
    certFile: "/srv/data/server-cert.pem",
    keyFile: "/srv/data/server-key.pem",
    sealPrivateFile: "/srv/data/seal-private.pem",
    sealPublicFile: "/srv/data/seal-public.pem",
  });
});

Deno.test("generateServerIdentity writes four files and reports their fingerprints", async () => {
  assert.deepEqual(written.map((w) => w.path), allFiles(shared));
  const certDer = decodePem(await Deno.readTextFile(shared.certFile), "CERTIFICATE");
  const sealDer = decodePem(await Deno.readTextFile(shared.sealPublicFile), "PUBLIC KEY");
  assert.equal(written[0]!.fingerprint, sha256Fingerprint(certDer));
  assert.equal(written[1]!.fingerprint, written[0]!.fingerprint);
  assert.equal(written[2]!.fingerprint, sha256Fingerprint(sealDer));
  assert.equal(written[3]!.fingerprint, written[2]!.fingerprint);
  assert.match(written[1]!.description, /mode 0600/);
  assert.deepEqual(await existingIdentityFiles(shared), allFiles(shared));
});

Deno.test("generateServerIdentity writes private keys with mode 0600 and leaves no temporary files", async () => {
  assert.equal((await Deno.stat(shared.keyFile)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(shared.sealPrivateFile)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(shared.certFile)).mode! & 0o777, 0o644);
  assert.equal((await Deno.stat(shared.sealPublicFile)).mode! & 0o777, 0o644);
  assert.equal((await Deno.stat(sharedDir)).mode! & 0o077, 0, "the created data directory is private");
  const names = [];
  for await (const entry of Deno.readDir(sharedDir)) names.push(entry.name);
  assert.deepEqual(names.sort(), [
    "seal-private.pem",
    "seal-public.pem",
    "server-cert.pem",
    "server-key.pem",
  ]);
});

Deno.test("generateServerIdentity without force refuses existing files and leaves them unchanged", async () => {
  const before = await readAll(shared);
  await assert.rejects(generateServerIdentity(shared), (err: unknown) => {
    assert.ok(err instanceof Deno.errors.AlreadyExists);
    assert.match(err.message, /--force/);
    return true;
  });
  assert.deepEqual(await readAll(shared), before);
});

Deno.test("generateServerIdentity refuses when only one file exists and writes nothing", async () => {
  const paths = identityPaths(join(root, "one-file"));
  await Deno.mkdir(join(root, "one-file"));
  await Deno.writeTextFile(paths.sealPublicFile, "old");
  await assert.rejects(generateServerIdentity(paths), Deno.errors.AlreadyExists);
  assert.deepEqual(await existingIdentityFiles(paths), [paths.sealPublicFile]);
  assert.equal(await Deno.readTextFile(paths.sealPublicFile), "old");
});

Deno.test("generateServerIdentity with force replaces every file", async () => {
  const paths = await copyOfShared("forced");
  const before = await readAll(paths);
  const again = await generateServerIdentity(paths, { force: true });
  const after = await readAll(paths);
  for (let i = 0; i < 4; i++) assert.notEqual(after[i], before[i], allFiles(paths)[i]);
  assert.notEqual(again[0]!.fingerprint, written[0]!.fingerprint);
  assert.notEqual(again[2]!.fingerprint, written[2]!.fingerprint);
  assert.equal((await Deno.stat(paths.sealPrivateFile)).mode! & 0o777, 0o600);
  const loaded = await loadServerIdentity(paths, { tls: true });
  assert.equal(loaded.sealFingerprint, again[2]!.fingerprint);
});

Deno.test("loadServerIdentity loads what generateServerIdentity wrote", async () => {
  const identity = await loadServerIdentity(shared, { tls: true });
  const certDer = decodePem(await Deno.readTextFile(shared.certFile), "CERTIFICATE");
  assert.equal(identity.certPem, await Deno.readTextFile(shared.certFile));
  assert.equal(identity.keyPem, await Deno.readTextFile(shared.keyFile));
  assert.equal(identity.certFingerprint, written[0]!.fingerprint);
  assert.equal(identity.sealFingerprint, written[2]!.fingerprint);
  assert.deepEqual(identity.channelBinding, new Uint8Array(createHash("sha256").update(certDer).digest()));
  // The private key opens what is sealed to the public key.
  const publicKey = await crypto.subtle.importKey(
    "spki",
    identity.sealPublicDer,
    { name: "RSA-OAEP", hash: "SHA-256" },
    false,
    ["encrypt"],
  );
  const context = sealContext("REGISTER", { user: "alice", nonce: "n" });
  const sealed = await seal(publicKey, new Uint8Array([1, 2, 3]), context);
  assert.deepEqual(await openSealed(identity.sealPrivateKey, sealed, context), new Uint8Array([1, 2, 3]));
});

Deno.test("loadServerIdentity without TLS needs only the sealing files", async () => {
  const paths = await copyOfShared("no-tls");
  await Deno.remove(paths.certFile);
  await Deno.remove(paths.keyFile);
  const identity = await loadServerIdentity(paths, { tls: false });
  assert.equal(identity.certPem, undefined);
  assert.equal(identity.channelBinding, undefined);
  assert.equal(identity.sealFingerprint, written[2]!.fingerprint);
  await assert.rejects(loadServerIdentity(paths, { tls: true }), Deno.errors.NotFound);
});

Deno.test("loadServerIdentity refuses a public key that is not the private key's half", async () => {
  const paths = await copyOfShared("swapped");
  const other = await crypto.subtle.generateKey(
    { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", other.publicKey));
  await Deno.writeTextFile(paths.sealPublicFile, encodePem("PUBLIC KEY", spki));
  await assert.rejects(loadServerIdentity(paths, { tls: false }), {
    name: "TypeError",
    message:
      `Key files do not match: ${paths.sealPublicFile} is not the public half of ${paths.sealPrivateFile}`,
  });
});

Deno.test("loadServerIdentity refuses key files that do not hold keys", async () => {
  const paths = await copyOfShared("garbage");
  await Deno.writeTextFile(
    paths.sealPrivateFile,
    encodePem("PRIVATE KEY", new Uint8Array(Buffer.from("nope"))),
  );
  await assert.rejects(loadServerIdentity(paths, { tls: false }), {
    name: "TypeError",
    message: `Invalid key file ${paths.sealPrivateFile}: not an RSA private key`,
  });
  await Deno.writeTextFile(paths.sealPrivateFile, "no pem here");
  await assert.rejects(loadServerIdentity(paths, { tls: false }), TypeError);
  await Deno.remove(paths.sealPrivateFile);
  await assert.rejects(loadServerIdentity(paths, { tls: false }), Deno.errors.NotFound);
});
