import assert from "node:assert/strict";
import { join } from "node:path";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { decodePem } from "../../lib/crypto/pem.ts";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";

const PASSWORD = "quartz willow ferry 5";

async function fingerprintOf(file: string, label: string): Promise<string> {
  return await fingerprint(decodePem(await Deno.readTextFile(file), label));
}

async function setup(dir: string) {
  const data = join(dir, "data");
  await installKeys(data);
  await seedUsers(data, { frank: PASSWORD });
  const pw = join(dir, "pw");
  await Deno.writeTextFile(pw, PASSWORD);
  const server = await ServerProcess.start(data);
  const login = (transport: "tcp" | "tls", extra: string[] = []) =>
    runCli("client", [
      ...(transport === "tls" ? ["--tls"] : []),
      "--port",
      String(transport === "tls" ? server.tlsPort : server.tcpPort),
      "--user",
      "frank",
      "--password-file",
      pw,
      "--exec",
      "login",
      ...extra,
    ], { env: { XDG_CONFIG_HOME: dir } });
  return { data, server, login, knownHosts: join(dir, "authchat", "known_hosts") };
}

for (const transport of ["tls", "tcp"] as const) {
  const kind = transport === "tls" ? "tls" : "seal";
  Deno.test(`authchat client trusts the ${kind} key on first use and refuses a changed one (${transport})`, async () => {
    await using dir = await tempDir();
    const { data, server, login, knownHosts } = await setup(dir.path);
    await using _server = server;
    const expected = transport === "tls"
      ? await fingerprintOf(join(data, "server-cert.pem"), "CERTIFICATE")
      : await fingerprintOf(join(data, "seal-public.pem"), "PUBLIC KEY");
    const port = transport === "tls" ? server.tlsPort : server.tcpPort;

    const first = await login(transport);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`on first use: ${expected.replace(/[+/]/g, "\\$&")}`));
    assert.equal(await Deno.readTextFile(knownHosts), `127.0.0.1:${port} ${kind} ${expected}\n`);

    const second = await login(transport);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /first use/);

    // The server now presents a different key than the one remembered.
    const other = await fingerprint(crypto.getRandomValues(new Uint8Array(64)));
    await Deno.writeTextFile(knownHosts, `127.0.0.1:${port} ${kind} ${other}\n`);
    const logins = (await server.settledLog()).split("login_ok").length;
    const changed = await login(transport);
    assert.equal(changed.code, 4, "the server's key changed");
    assert.match(
      changed.stderr,
      /WARNING: THE SERVER (TLS CERTIFICATE|SEALING KEY) OF 127\.0\.0\.1:\d+ HAS CHANGED!/,
    );
    assert.ok(
      changed.stderr.includes(`Expected ${other}`) && changed.stderr.includes(`Got      ${expected}`),
    );
    assert.equal(
      (await server.settledLog()).split("login_ok").length,
      logins,
      "nothing was sent to the changed server",
    );
    assert.equal(
      await Deno.readTextFile(knownHosts),
      `127.0.0.1:${port} ${kind} ${other}\n`,
      "the file is untouched",
    );

    const pinned = await login(transport, ["--fingerprint", expected]);
    assert.equal(pinned.code, 0, pinned.stderr);
    const wrongPin = await login(transport, ["--fingerprint", other]);
    assert.equal(wrongPin.code, 4, "not the pinned key");
    assert.match(wrongPin.stderr, /does not match --fingerprint/);
  });
}

Deno.test("authchat client --ca accepts the server's certificate and refuses another", async () => {
  await using dir = await tempDir();
  const { data, server, login, knownHosts } = await setup(dir.path);
  await using _server = server;
  const ok = await login("tls", ["--ca", join(data, "server-cert.pem")]);
  assert.equal(ok.code, 0, ok.stderr);
  await assert.rejects(Deno.stat(knownHosts), Deno.errors.NotFound, "a CA needs no trust on first use");

  const otherDir = join(dir.path, "other");
  const keygen = await runCli("keygen", ["--data", otherDir]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const refused = await login("tls", ["--ca", join(otherDir, "server-cert.pem")]);
  assert.equal(refused.code, 4, "not signed by the CA");
  assert.match(refused.stderr, /TLS verification of 127\.0\.0\.1:\d+ failed/);
});
