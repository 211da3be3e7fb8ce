import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient, ConnectionClosedError } from "../../lib/client/authchat_client.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";

Deno.test("AuthchatClient gives up on a server that never answers", async () => {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  try {
    const started = Date.now();
    await assert.rejects(
      AuthchatClient.connect({
        host: "127.0.0.1",
        port: (listener.addr as Deno.NetAddr).port,
        tls: false,
        trust: { knownHosts: new KnownHosts(join(dir, "known_hosts")) },
        requestTimeoutMs: 200,
      }),
      (err: Error) =>
        err instanceof ConnectionClosedError && /did not answer HELLO within 0\.2 s/.test(err.message),
    );
    assert.ok(Date.now() - started < 5000);
  } finally {
    (await accepted).close();
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
