/**
 * The server's identity on disk: TLS certificate and key, and the RSA key pair
 * that secrets are sealed to. Private keys are written with mode 0600, and
 * existing files are replaced only when asked.
 *
 * @module
 */

import { join } from "node:path";
import { mintServerCertificate, tlsServerEndPoint } from "./certificate.ts";
import { fingerprint } from "./fingerprint.ts";
import { decodePem, encodePem } from "./pem.ts";
import { importSealPrivateKey, importSealPublicKey } from "./seal.ts";

/** Where the four identity files live. */
export interface IdentityPaths {
  /** TLS certificate (PEM). */
  certFile: string;
  /** TLS private key (PEM, PKCS#8). */
  keyFile: string;
  /** Sealing private key (PEM, PKCS#8, RSA-3072). */
  sealPrivateFile: string;
  /** Sealing public key (PEM, SubjectPublicKeyInfo). */
  sealPublicFile: string;
}

/**
 * The default file names inside a data directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identityPaths } from "./server_identity.ts";
 * assert(identityPaths("data").certFile.endsWith("server-cert.pem"));
 * ```
 *
 * @param dir The data directory.
 * @returns The paths.
 */
export function identityPaths(dir: string): IdentityPaths {
  return {
    certFile: join(dir, "server-cert.pem"),
    keyFile: join(dir, "server-key.pem"),
    sealPrivateFile: join(dir, "seal-private.pem"),
    sealPublicFile: join(dir, "seal-public.pem"),
  };
}

/** One file written by {@linkcode generateServerIdentity}. */
export interface WrittenKey {
  /** File path. */
  path: string;
  /** What it holds. */
  description: string;
  /** Fingerprint of the certificate or public key it holds or belongs to. */
  fingerprint: string;
}

/** Options of {@linkcode generateServerIdentity}. */
export interface GenerateOptions {
  /** Extra subjectAltName entries. */
  hostnames?: string[];
  /** Certificate validity in days. */
  days?: number;
  /** RSA-3072 certificate key instead of ECDSA P-256. */
  rsa?: boolean;
  /** Replace existing files. */
  force?: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * List which identity files are present.
 *
 * @param paths The paths.
 * @returns The paths that exist.
 */
export async function existingIdentityFiles(paths: IdentityPaths): Promise<string[]> {
  const all = [paths.certFile, paths.keyFile, paths.sealPrivateFile, paths.sealPublicFile];
  const found: string[] = [];
  for (const path of all) if (await exists(path)) found.push(path);
  return found;
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temp, text, { mode, createNew: true });
    await Deno.chmod(temp, mode);
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

/**
 * Create the TLS certificate and key and the sealing key pair.
 *
 * @param paths Where to write.
 * @param options Names, validity, key type, overwrite.
 * @returns The files written with their fingerprints.
 * @throws {Deno.errors.AlreadyExists} When a file exists and `force` is not set (nothing is written).
 */
export async function generateServerIdentity(
  paths: IdentityPaths,
  options: GenerateOptions = {},
): Promise<WrittenKey[]> {
  const present = await existingIdentityFiles(paths);
  if (present.length > 0 && !options.force) {
    throw new Deno.errors.AlreadyExists(
      `Key files already exist: ${present.join(", ")}: pass --force to replace them`,
    );
  }
  const cert = await mintServerCertificate({
    hostnames: options.hostnames ?? [],
    days: options.days ?? 825,
    rsa: options.rsa ?? false,
  });
  const seal = await crypto.subtle.generateKey(
    { name: "RSA-OAEP", modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  );
  const sealPrivate = new Uint8Array(await crypto.subtle.exportKey("pkcs8", seal.privateKey));
  const sealPublic = new Uint8Array(await crypto.subtle.exportKey("spki", seal.publicKey));
  for (const path of [paths.certFile, paths.keyFile, paths.sealPrivateFile, paths.sealPublicFile]) {
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
  }
  await writeAtomically(paths.keyFile, cert.keyPem, 0o600);
  await writeAtomically(paths.certFile, cert.certPem, 0o644);
  await writeAtomically(paths.sealPrivateFile, encodePem("PRIVATE KEY", sealPrivate), 0o600);
  await writeAtomically(paths.sealPublicFile, encodePem("PUBLIC KEY", sealPublic), 0o644);
  sealPrivate.fill(0);
  const certFp = await fingerprint(cert.certDer);
  const sealFp = await fingerprint(sealPublic);
  const kind = options.rsa ? "RSA-3072" : "ECDSA P-256";
  return [
    { path: paths.certFile, description: `TLS certificate (${kind})`, fingerprint: certFp },
    { path: paths.keyFile, description: `TLS private key (${kind}, mode 0600)`, fingerprint: certFp },
    {
      path: paths.sealPrivateFile,
      description: "sealing private key (RSA-3072, mode 0600)",
      fingerprint: sealFp,
    },
    { path: paths.sealPublicFile, description: "sealing public key (RSA-3072)", fingerprint: sealFp },
  ];
}

/** The loaded identity a server runs with. */
export interface ServerIdentity {
  /** TLS certificate PEM, when TLS is on. */
  certPem?: string;
  /** TLS private key PEM, when TLS is on. */
  keyPem?: string;
  /** `tls-server-end-point` binding data, when TLS is on. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** Certificate fingerprint, when TLS is on. */
  certFingerprint?: string;
  /** Sealing private key (RSA-OAEP decrypt). */
  sealPrivateKey: CryptoKey;
  /** Sealing public key, SubjectPublicKeyInfo DER. */
  sealPublicDer: Uint8Array<ArrayBuffer>;
  /** Sealing key fingerprint. */
  sealFingerprint: string;
}

async function readPem(path: string, label: string): Promise<{ text: string; der: Uint8Array<ArrayBuffer> }> {
  const text = await Deno.readTextFile(path);
  try {
    return { text, der: decodePem(text, label) };
  } catch (err) {
    throw new TypeError(`Invalid key file ${path}: ${(err as Error).message}`);
  }
}

async function checkKeyPair(
  privateKey: CryptoKey,
  publicDer: Uint8Array<ArrayBuffer>,
  paths: IdentityPaths,
): Promise<void> {
  const probe = crypto.getRandomValues(new Uint8Array(16));
  try {
    const publicKey = await importSealPublicKey(publicDer);
    const sealed = await crypto.subtle.encrypt({ name: "RSA-OAEP" }, publicKey, probe);
    const opened = new Uint8Array(await crypto.subtle.decrypt({ name: "RSA-OAEP" }, privateKey, sealed));
    if (opened.toHex() === probe.toHex()) return;
  } catch {
    // Reported below with the file names.
  }
  throw new TypeError(
    `Key files do not match: ${paths.sealPublicFile} is not the public half of ${paths.sealPrivateFile}`,
  );
}

/**
 * Load the identity files.
 *
 * @param paths The paths.
 * @param options Whether the TLS files are needed.
 * @returns The identity.
 * @throws {Deno.errors.NotFound} When a needed file is missing.
 * @throws {TypeError} When a file does not hold what it should.
 */
export async function loadServerIdentity(
  paths: IdentityPaths,
  options: { tls: boolean },
): Promise<ServerIdentity> {
  const sealPrivate = await readPem(paths.sealPrivateFile, "PRIVATE KEY");
  const sealPublic = await readPem(paths.sealPublicFile, "PUBLIC KEY");
  let sealPrivateKey: CryptoKey;
  try {
    sealPrivateKey = await importSealPrivateKey(sealPrivate.der);
  } catch {
    throw new TypeError(`Invalid key file ${paths.sealPrivateFile}: not an RSA private key`);
  } finally {
    sealPrivate.der.fill(0);
  }
  await checkKeyPair(sealPrivateKey, sealPublic.der, paths);
  const identity: ServerIdentity = {
    sealPrivateKey,
    sealPublicDer: sealPublic.der,
    sealFingerprint: await fingerprint(sealPublic.der),
  };
  if (options.tls) {
    const cert = await readPem(paths.certFile, "CERTIFICATE");
    identity.certPem = cert.text;
    identity.keyPem = await Deno.readTextFile(paths.keyFile);
    identity.channelBinding = await tlsServerEndPoint(cert.der);
    identity.certFingerprint = await fingerprint(cert.der);
  }
  return identity;
}
