import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { decodePem } from "../../lib/crypto/pem.ts";
import { installKeys, loginOnce, runCli, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";

async function openssl(...args: string[]): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  const decoder = new TextDecoder();
  return { code: out.code, out: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

Deno.test("authchat keygen writes a leaf certificate OpenSSL accepts, 0600 private keys and fingerprints", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "keys");
  const result = await runCli("keygen", [
    "--data",
    data,
    "--hostname",
    "chat.example.org",
    "--hostname",
    "10.1.2.3",
  ]);
  assert.equal(result.code, 0, result.stderr);
  for (const file of ["server-key.pem", "seal-private.pem"]) {
    assert.equal((await Deno.stat(join(data, file))).mode! & 0o777, 0o600, file);
  }
  const certFp = await fingerprint(
    decodePem(await Deno.readTextFile(join(data, "server-cert.pem")), "CERTIFICATE"),
  );
  const sealFp = await fingerprint(
    decodePem(await Deno.readTextFile(join(data, "seal-public.pem")), "PUBLIC KEY"),
  );
  assert.ok(new RegExp(`server-cert\\.pem +${RegExp.escape(certFp)}`).test(result.stdout), result.stdout);
  assert.ok(result.stdout.includes(`--fingerprint ${sealFp}`));
  const text = await openssl("x509", "-in", join(data, "server-cert.pem"), "-noout", "-text");
  assert.equal(text.code, 0, text.out);
  assert.match(text.out, /CA:FALSE/);
  assert.match(
    text.out,
    /DNS:chat\.example\.org, IP Address:10\.1\.2\.3, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/,
  );
  assert.match(text.out, /ecdsa-with-SHA256/);
  const verify = await openssl(
    "verify",
    "-CAfile",
    join(data, "server-cert.pem"),
    join(data, "server-cert.pem"),
  );
  assert.equal(verify.code, 0, verify.out);
  assert.match(verify.out, /: OK/);
  const der = await openssl(
    "x509",
    "-in",
    join(data, "server-cert.pem"),
    "-noout",
    "-fingerprint",
    "-sha256",
  );
  const hex = der.out.split("=")[1]!.trim().replaceAll(":", "").toLowerCase();
  assert.equal(`SHA256:${Uint8Array.fromHex(hex).toBase64({ omitPadding: true })}`, certFp);
});

Deno.test("authchat keygen, seed and server refuse an empty --data alike (exit 2), writing nothing", async () => {
  await using dir = await tempDir();
  for (const kind of ["keygen", "seed", "server"] as const) {
    const result = await runCli(kind, ["--data", ""], { cwd: dir.path });
    assert.equal(result.code, 2, `${kind}: ${result.stderr}`);
    assert.equal(result.stderr, "error: Invalid configuration --data: expected a non-empty string\n", kind);
    assert.equal(result.stdout, "", kind);
  }
  // An empty directory name would have meant the working directory: no key lands there.
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
});

Deno.test("authchat keygen never overwrites keys without --force", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "keys");
  assert.equal((await runCli("keygen", ["--data", data])).code, 0);
  const before = await Deno.readTextFile(join(data, "seal-private.pem"));
  const again = await runCli("keygen", ["--data", data, "--rsa"]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /Key files already exist: .*pass --force to replace them/);
  assert.equal(await Deno.readTextFile(join(data, "seal-private.pem")), before);
  const forced = await runCli("keygen", ["--data", data, "--rsa", "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(await Deno.readTextFile(join(data, "seal-private.pem")), before);
  const text = await openssl("x509", "-in", join(data, "server-cert.pem"), "-noout", "-text");
  assert.match(text.out, /Public-Key: \(3072 bit\)/);
  assert.match(text.out, /sha256WithRSAEncryption/);
});

Deno.test("authchat seed --demo creates five users with printed passwords that log in", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const seeded = await runCli("seed", ["--data", data, "--demo", "--iterations", String(TEST_ITERATIONS)]);
  assert.equal(seeded.code, 0, seeded.stderr);
  const rows = [...seeded.stdout.matchAll(/^(alice|bob|charlie|eve|admin) +(\S+)$/gm)];
  assert.deepEqual(rows.map((r) => r[1]), ["alice", "bob", "charlie", "eve", "admin"]);
  assert.match(
    seeded.stdout,
    /seed: 5 created, 0 created but must change password, 0 kept \(already existed\), 0 rejected; 5 accounts in /,
  );
  const file = join(data, "demo-passwords.txt");
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  assert.equal(await Deno.readTextFile(file), rows.map((r) => `${r[1]}:${r[2]}\n`).join(""));
  assert.equal(new Set(rows.map((r) => r[2])).size, 5);
  for (const row of rows) assert.match(row[2]!, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);

  const rerun = await runCli("seed", ["--data", data, "--demo"]);
  assert.equal(rerun.code, 0);
  assert.match(
    rerun.stdout,
    /seed: 0 created, 0 created but must change password, 5 kept \(already existed\), 0 rejected;/,
  );

  await using server = await ServerProcess.start(data);
  const login = await loginOnce(server, { user: "admin", password: rows[4]![2]!, home: dir.path });
  assert.equal(login.code, 0, login.stderr);
});

Deno.test("authchat seed --from imports a legacy file, flags weak passwords and reports every rejected line", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const legacy = join(dir.path, "users.txt");
  const lines = [
    "grace:long enough passphrase 1",
    "heidi:password1",
    "",
    "no separator here",
    "ivan:ivan-ivan-ivan-ivan",
    "GRACE:another long passphrase",
    "judy:has:colons:in:a:long:password",
    "bad name:some long passphrase",
  ];
  for (let i = 0; i < 20; i++) lines.push(`bulk${i}:bulk passphrase number ${i}`);
  await Deno.writeTextFile(legacy, lines.join("\r\n") + "\r\n");
  const result = await runCli("seed", [
    "--data",
    data,
    "--from",
    legacy,
    "--iterations",
    String(TEST_ITERATIONS),
  ]);
  assert.equal(result.code, 1, "rejected lines make the run fail");
  assert.match(
    result.stdout,
    /users\.txt:2: imported "heidi": must change password \(password is too short: 9 characters is shorter than 10\)$/m,
  );
  assert.match(
    result.stdout,
    /users\.txt:5: imported "ivan": must change password \(password contains the user name\)$/m,
  );
  assert.doesNotMatch(result.stdout + result.stderr, /users\.txt:3:/, "a blank line is no error");
  assert.match(result.stderr, /users\.txt:4: rejected "": no ':' between user and value/);
  assert.match(result.stderr, /users\.txt:1: rejected "grace": same user on lines 1, 6: none imported/);
  assert.match(result.stderr, /users\.txt:6: rejected "GRACE": same user on lines 1, 6: none imported/);
  assert.match(result.stderr, /users\.txt:8: rejected "bad name": Invalid username: it contains white space/);
  assert.match(result.stderr, /importing: 2\d\/2\d lines/, "progress for many users");
  assert.match(
    result.stdout,
    /seed: 21 created, 2 created but must change password, 0 kept \(already existed\), 4 rejected; 23 accounts/,
  );
  const bytes = await Deno.readFile(join(data, "authchat.db"));
  const raw = new TextDecoder("latin1").decode(bytes);
  assert.ok(!raw.includes("bulk passphrase number 7"), "no plaintext in the database");
  assert.ok(!raw.includes("has:colons:in"), "no plaintext in the database");
  assert.ok(!(result.stdout + result.stderr).includes("password1"), "no password in the report");
});

Deno.test("authchat seed --import-verifiers keeps PostgreSQL verifiers that log in with the original password", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  // Built with node:crypto, independently of authchat's own SCRAM code.
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const salted = pbkdf2Sync("pg original secret", salt, 4096, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest("base64");
  const serverKey = createHmac("sha256", salted).update("Server Key").digest("base64");
  const file = join(dir.path, "verifiers.txt");
  await Deno.writeTextFile(
    file,
    `ken:SCRAM-SHA-256$4096:${salt.toBase64()}$${storedKey}:${serverKey}\n` +
      `lou:SCRAM-SHA-256$1000:${salt.toBase64()}$${storedKey}:${serverKey}\n` +
      "mia:md5abcdef\n",
  );
  const result = await runCli("seed", ["--data", data, "--import-verifiers", file]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /verifiers\.txt:2: rejected "lou": Iteration count out of range: 1000/);
  assert.match(result.stderr, /verifiers\.txt:3: rejected "mia": Not a SCRAM-SHA-256 verifier/);
  assert.match(
    result.stdout,
    /seed: 1 created, 0 created but must change password, 0 kept \(already existed\), 2 rejected;/,
  );
  const db = new DatabaseSync(join(data, "authchat.db"));
  try {
    const row = db.prepare("SELECT verifier FROM users WHERE name_key = 'ken'").get() as { verifier: string };
    assert.equal(row.verifier, `SCRAM-SHA-256$4096:${salt.toBase64()}$${storedKey}:${serverKey}`);
  } finally {
    db.close();
  }
  await using server = await ServerProcess.start(data);
  const login = await loginOnce(server, {
    user: "ken",
    password: "pg original secret",
    tls: true,
    home: dir.path,
  });
  assert.equal(login.code, 0, login.stderr);
});

Deno.test("authchat seed --user applies the password policy and --user needs --password-file", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const pw = join(dir.path, "pw");
  await Deno.writeTextFile(pw, "iloveyou123\n");
  const weak = await runCli("seed", ["--data", data, "--user", "nina", "--password-file", pw]);
  assert.equal(weak.code, 1);
  assert.match(
    weak.stderr,
    /rejected "nina": Password refused: it is on the list of common passwords \(PASSWORD_POLICY\)/,
  );
  assert.match(
    weak.stdout,
    /seed: 0 created, 0 created but must change password, 0 kept \(already existed\), 1 rejected; 0 accounts/,
  );
  const usage = await runCli("seed", ["--data", data, "--user", "nina"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--user and --password-file go together/);
  const badIterations = await runCli("seed", ["--data", data, "--iterations", "100"]);
  assert.equal(badIterations.code, 2);
});
