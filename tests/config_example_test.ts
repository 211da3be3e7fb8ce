import assert from "node:assert/strict";
import { parse } from "yaml";
import { CLIENT_CONFIG_KEYS, loadClientConfig } from "../lib/client/client_config.ts";
import { loadServerConfig } from "../lib/server/server_config.ts";

const EXAMPLE = new URL("../config/authchat.example.yaml", import.meta.url);

Deno.test("config/authchat.example.yaml loads and documents every key with its default", async () => {
  const fromExample = await loadServerConfig({ file: EXAMPLE.pathname });
  const defaults = await loadServerConfig({ file: "/dev/null" });
  assert.deepEqual(fromExample, defaults);
  const text = await Deno.readTextFile(EXAMPLE);
  const active = Object.keys(parse(text) as Record<string, unknown>);
  const commented = [...text.matchAll(/^# ([a-z_]+): /gm)].map((m) => m[1]!);
  assert.deepEqual([...active, ...commented].sort(), Object.keys(defaults).sort());
});

const CLIENT_EXAMPLE = new URL("../config/client.example.yaml", import.meta.url);

Deno.test("config/client.example.yaml loads to the defaults and documents every key", async () => {
  const env = () => undefined;
  const fromExample = loadClientConfig({ file: CLIENT_EXAMPLE.pathname, env });
  const defaults = loadClientConfig({ file: "/dev/null", env });
  assert.deepEqual(fromExample.config, defaults.config);
  const text = await Deno.readTextFile(CLIENT_EXAMPLE);
  const active = Object.keys(parse(text) as Record<string, unknown>);
  const commented = [...text.matchAll(/^# ([a-z_]+): /gm)].map((m) => m[1]!);
  assert.deepEqual([...active, ...commented].sort(), [...CLIENT_CONFIG_KEYS].sort());
});
