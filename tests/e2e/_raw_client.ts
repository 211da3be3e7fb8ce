/**
 * A raw protocol client for end-to-end tests: plain TCP, arbitrary bytes out,
 * frames in through the real {@linkcode FrameDecoder}, every read bounded by a
 * timeout so a server that does not answer fails the test instead of hanging it.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { saslPrep } from "../../lib/auth/saslprep.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64 } from "../../lib/codec/base64.ts";
import { encodeFrame, FrameDecoder } from "../../lib/codec/frame.ts";
import type { Sealed } from "../../lib/codec/messages.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { importSealPublicKey, seal, sealContext } from "../../lib/crypto/seal.ts";
import { NodeSocketStream } from "../../lib/transport/node_socket_stream.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a test waits for one frame or for the end of the stream. */
export const REPLY_TIMEOUT_MS = 5000;

/** A decoded frame from the server: a JSON object (tests assert on its fields). */
export type Reply = Record<string, unknown>;

/**
 * Encode a header announcing `length` bytes, whatever the cap.
 *
 * @param length The announced payload length (0..2^32-1).
 * @returns The 4-byte header.
 */
export function frameHeader(length: number): Uint8Array {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, length);
  return header;
}

/**
 * Encode a JSON value as one frame.
 *
 * @param value Any JSON value (objects, but also arrays or strings for bad-input tests).
 * @returns The framed bytes.
 */
export function jsonFrame(value: unknown): Uint8Array {
  return encodeFrame(encoder.encode(JSON.stringify(value)));
}

function timeout(ms: number, what: string): { promise: Promise<never>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

/** What a raw connection needs of its socket: `Deno.TcpConn` as it is, a `node:net` socket adapted. */
export interface RawConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** Connect from a chosen local address (Deno.connect cannot bind one; node:net can). */
async function connectFrom(port: number, from: string): Promise<RawConn> {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: from });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  const stream = new NodeSocketStream(socket);
  return {
    read: (buffer) => stream.read(buffer),
    write: (data) => stream.write(data),
    closeWrite: () => new Promise<void>((resolve) => socket.end(resolve)),
    close: () => stream.close(),
  };
}

/**
 * One raw connection. A background loop reads and decodes frames; {@linkcode RawClient.next}
 * hands them out in order. Dispose it (or call {@linkcode RawClient.close}) in `finally`.
 */
export class RawClient {
  #conn: RawConn;
  #decoder = new FrameDecoder();
  #frames: Reply[] = [];
  #ended = false;
  #readError: Error | null = null;
  #wake: (() => void) | null = null;
  #reader: Promise<void>;
  #closed = false;

  private constructor(conn: RawConn) {
    this.#conn = conn;
    this.#reader = this.#readLoop();
  }

  /**
   * Connect to a server's plain TCP port on 127.0.0.1.
   *
   * @param port The port.
   * @param options `from`: the local address to connect from (any of 127.0.0.0/8), to act as another client
   *   address; default 127.0.0.1.
   * @returns The client.
   */
  static async connect(port: number, options: { from?: string } = {}): Promise<RawClient> {
    if (options.from !== undefined) return new RawClient(await connectFrom(port, options.from));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawClient(conn);
  }

  /**
   * Talk over another byte stream (a UDP session's).
   *
   * @param conn The stream.
   * @returns The client.
   */
  static over(conn: RawConn): RawClient {
    return new RawClient(conn);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        for (const payload of this.#decoder.push(buffer.subarray(0, n))) {
          this.#frames.push(JSON.parse(decoder.decode(payload)) as Reply);
        }
        if (this.#decoder.error) throw this.#decoder.error;
        this.#wake?.();
      }
      if (this.#decoder.end()) throw this.#decoder.error;
    } catch (err) {
      // A reset or a local close ends the stream like EOF does; anything else is kept for the test.
      const reset = err instanceof Deno.errors.ConnectionReset ||
        (err as { code?: string }).code === "ECONNRESET";
      if (!this.#closed && !reset) this.#readError = err as Error;
    } finally {
      this.#ended = true;
      this.#wake?.();
    }
  }

  /**
   * Write raw bytes.
   *
   * @param bytes Anything.
   */
  async sendBytes(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
  }

  /**
   * Send a JSON value as one frame.
   *
   * @param value The message.
   */
  async send(value: unknown): Promise<void> {
    await this.sendBytes(jsonFrame(value));
  }

  /** Half-close: the server sees end of stream, replies can still be read. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /**
   * The next frame, or `null` when the server ended the stream.
   *
   * @param timeoutMs Longest wait.
   * @returns The decoded frame or `null`.
   * @throws {Error} On timeout, or when the server sent bytes that are not frames of JSON.
   */
  async next(timeoutMs: number = REPLY_TIMEOUT_MS): Promise<Reply | null> {
    const limit = timeout(timeoutMs, "a frame from the server");
    try {
      while (true) {
        const frame = this.#frames.shift();
        if (frame) return frame;
        if (this.#readError) throw this.#readError;
        if (this.#ended) return null;
        const woken = new Promise<void>((resolve) => this.#wake = resolve);
        await Promise.race([woken, limit.promise]);
        this.#wake = null;
      }
    } finally {
      limit.clear();
    }
  }

  /**
   * The next frame, which must exist.
   *
   * @param timeoutMs Longest wait.
   * @returns The frame.
   * @throws {Error} When the stream ended instead.
   */
  async reply(timeoutMs: number = REPLY_TIMEOUT_MS): Promise<Reply> {
    const frame = await this.next(timeoutMs);
    if (frame === null) throw new Error("The server closed the connection instead of replying");
    return frame;
  }

  /**
   * Send a message and return the next frame.
   *
   * @param value The message.
   * @returns The reply.
   */
  async request(value: unknown): Promise<Reply> {
    await this.send(value);
    return await this.reply();
  }

  /**
   * Wait for the server to close the connection, failing on any further frame.
   *
   * @param timeoutMs Longest wait.
   * @throws {Error} When a frame arrives or the wait times out.
   */
  async expectClosed(timeoutMs: number = REPLY_TIMEOUT_MS): Promise<void> {
    const frame = await this.next(timeoutMs);
    if (frame !== null) throw new Error(`Expected the connection to close, got ${JSON.stringify(frame)}`);
  }

  /** Close the connection and wait for the read loop to finish. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#reader;
  }

  /** Close on dispose. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The messages of one successful SCRAM login, for tests that replay them. */
export interface LoginTranscript {
  /** The server's HELLO. */
  hello: Reply;
  /** The client-final-message sent in PROOF. */
  clientFinal: string;
  /** The server's LOGIN reply. */
  reply: Reply;
}

/**
 * Say HELLO and check the greeting.
 *
 * @param client The connection.
 * @param id Request id.
 * @returns The server's HELLO.
 */
export async function hello(client: RawClient, id = 1): Promise<Reply> {
  const reply = await client.request({ op: "HELLO", version: 1, id });
  if (reply.op !== "HELLO" || reply.id !== id) throw new Error(`HELLO refused: ${JSON.stringify(reply)}`);
  return reply;
}

/**
 * Try a SCRAM-SHA-256 login after HELLO: `LOGIN`, then `PROOF` when a `CHALLENGE` comes back. Nothing is
 * verified or refused here: the test reads the reply.
 *
 * @param client A connection that said HELLO.
 * @param attempt User, password and the mechanisms from HELLO; the id of `LOGIN` (default 2; `PROOF` gets
 *   the next), and fields to add to `LOGIN` (a `device_token`).
 * @returns The reply to `LOGIN` when it was no `CHALLENGE` (then `clientFinal` is `null`), else the reply to
 *   `PROOF`; and the SCRAM client (to verify the server's signature, or for its session key).
 */
export async function scramAttempt(
  client: RawClient,
  attempt: { user: string; password: string; mechanisms: string[]; id?: number; fields?: Reply },
): Promise<{ reply: Reply; clientFinal: string | null; scram: ScramClient }> {
  const scram = new ScramClient({
    username: attempt.user,
    password: attempt.password,
    serverMechanisms: attempt.mechanisms,
  });
  const id = attempt.id ?? 2;
  const challenge = await client.request({
    op: "LOGIN",
    id,
    mechanism: scram.mechanism,
    data: scram.first,
    ...attempt.fields,
  });
  if (challenge.op !== "CHALLENGE") return { reply: challenge, clientFinal: null, scram };
  const clientFinal = await scram.final(String(challenge.data));
  const reply = await client.request({ op: "PROOF", id: id + 1, data: clientFinal });
  return { reply, clientFinal, scram };
}

/**
 * Log in with SCRAM-SHA-256 after HELLO, verifying the server's signature.
 *
 * @param client A connection that said HELLO.
 * @param credentials User, password and the mechanisms from HELLO.
 * @returns The client-final-message and the LOGIN reply, and the SCRAM client (for its session key).
 * @throws {Error} When any step is refused.
 */
export async function scramLogin(
  client: RawClient,
  credentials: { user: string; password: string; mechanisms: string[] },
): Promise<Omit<LoginTranscript, "hello"> & { scram: ScramClient }> {
  const { reply, clientFinal, scram } = await scramAttempt(client, credentials);
  if (clientFinal === null) throw new Error(`LOGIN refused: ${JSON.stringify(reply)}`);
  if (reply.op !== "LOGIN") throw new Error(`PROOF refused: ${JSON.stringify(reply)}`);
  scram.verify(String(reply.data));
  return { clientFinal, reply, scram };
}

/**
 * Compute the verifier of a new password as the real client does: SASLprep, then the iteration count the
 * server announced in HELLO and a random salt. The password itself is never sent.
 *
 * @param password The new password, as typed.
 * @param greeting The server's HELLO (its `iterations`).
 * @returns The verifier in PostgreSQL's format.
 * @throws {Error} When HELLO carried no iteration count.
 */
export async function clientVerifier(password: string, greeting: Reply): Promise<string> {
  if (!Number.isInteger(greeting.iterations)) throw new Error("HELLO carried no iteration count");
  const prepared = saslPrep(password, { allowUnassigned: true });
  return formatVerifier(await createVerifier(prepared, { iterations: greeting.iterations as number }));
}

/**
 * Seal a new password's verifier to the server key and seal nonce of a HELLO reply, as a plain-TCP
 * client must.
 *
 * @param greeting The server's HELLO (its `seal_nonce` is single-use: say HELLO again per secret).
 * @param secret The command, the `user` field it carries, and the verifier (text, or raw bytes for
 *   tests of what the server does with a sealed blob that is no verifier).
 * @returns The `sealed` field.
 */
export async function sealVerifier(
  greeting: Reply,
  secret: { op: "REGISTER" | "PASSWD"; user: string; verifier: string | Uint8Array<ArrayBuffer> },
): Promise<Sealed> {
  const spki = decodeBase64(String(greeting.seal_key));
  if (spki === null) throw new Error("HELLO carried no base64 seal_key");
  const key = await importSealPublicKey(spki);
  const context = sealContext(secret.op, { user: secret.user, nonce: String(greeting.seal_nonce) });
  const plain = typeof secret.verifier === "string" ? encoder.encode(secret.verifier) : secret.verifier;
  return await seal(key, plain, context);
}

/**
 * Say HELLO over TLS (any certificate accepted) on a connection from a chosen local address, which may
 * first send other bytes (a PROXY header) before its handshake.
 *
 * @param port The server's TLS port on 127.0.0.1.
 * @param from The local address (any of 127.0.0.0/8).
 * @param first Bytes to send before the handshake, or `null`.
 * @returns The server's reply, or `null` when the handshake or the connection failed.
 */
export async function tlsHello(port: number, from: string, first: Uint8Array | null): Promise<Reply | null> {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress: from });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if (first) await new Promise<void>((resolve) => socket.write(first, () => resolve()));
  const secure = tls.connect({ socket, rejectUnauthorized: false });
  try {
    return await new Promise<Reply | null>((resolve) => {
      const frames = new FrameDecoder();
      secure.once("secureConnect", () => secure.write(jsonFrame({ op: "HELLO", version: 1, id: 1 })));
      secure.on("data", (chunk: Uint8Array) => {
        for (const payload of frames.push(new Uint8Array(chunk))) {
          resolve(JSON.parse(decoder.decode(payload)));
        }
      });
      secure.once("error", () => resolve(null));
      secure.once("close", () => resolve(null));
    });
  } finally {
    secure.destroy();
    socket.destroy();
    // Let the sockets' close events run before the test's resource check.
    await new Promise((r) => setTimeout(r, 10));
  }
}
