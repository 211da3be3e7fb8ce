import assert from "node:assert/strict";
import type { CliResult } from "./_harness.ts";
import { MOD, ROOT, runProgram } from "./_harness.ts";

const SUBCOMMANDS = ["server", "client", "seed", "keygen"] as const;
const TASKS = { start: "server", client: "client", seed: "seed", keygen: "keygen" } as const;

/** Run `deno` from the repository root with this process's environment (no NO_COLOR added), stdin closed. */
function deno(args: string[]): Promise<CliResult> {
  return runProgram(Deno.execPath(), args, { cwd: ROOT });
}

Deno.test("deno run mod.ts --help answers with no permission at all, for the program and each subcommand", async () => {
  const results = await Promise.all([
    deno(["run", "--quiet", "--no-prompt", MOD, "--help"]),
    ...SUBCOMMANDS.map((sub) => deno(["run", "--quiet", "--no-prompt", MOD, sub, "--help"])),
  ]);
  const [top, ...subs] = results;
  assert.equal(top!.code, 0, top!.stderr);
  assert.equal(top!.stderr, "");
  assert.match(top!.stdout, /^Usage: authchat \[options\] \[command\]/);
  for (const sub of SUBCOMMANDS) assert.match(top!.stdout, new RegExp(`^  ${sub}\\b`, "m"));
  SUBCOMMANDS.forEach((sub, i) => {
    assert.equal(subs[i]!.code, 0, subs[i]!.stderr);
    assert.equal(subs[i]!.stderr, "", sub);
    assert.match(subs[i]!.stdout, new RegExp(`^Usage: authchat ${sub} \\[options\\]`), sub);
  });
});

Deno.test("deno task <start|client|seed|keygen> --help shows the subcommand's help", async () => {
  const results = await Promise.all(Object.keys(TASKS).map((task) => deno(["task", task, "--help"])));
  Object.values(TASKS).forEach((sub, i) => {
    const result = results[i]!;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^Usage: authchat ${sub} \\[options\\]`), sub);
    assert.doesNotMatch(result.stderr, /error|Requires|permission/i, sub);
  });
  assert.match(results[0]!.stdout, /SIGINT \(Ctrl-C\), SIGTERM or SIGHUP stops the server cleanly/);
});

Deno.test("deno task reports a usage error with the command's own message and exit 2", async () => {
  const [task, direct] = await Promise.all([
    deno(["task", "keygen", "--bogus"]),
    deno(["run", "--quiet", "--no-prompt", MOD, "keygen", "--bogus"]),
  ]);
  assert.equal(task.code, 2);
  assert.equal(direct.code, 2);
  assert.match(direct.stderr, /^error: unknown option '--bogus'/);
  assert.ok(task.stderr.endsWith(direct.stderr), task.stderr);
});

Deno.test("deno run mod.ts server --help answers on a terminal with no permission and no prompt", async () => {
  // util-linux `script` gives the command a pseudo-terminal: commander then asks the terminal's width and
  // (before the fix) whether it takes colours, which read NO_COLOR, FORCE_COLOR and CLICOLOR_FORCE: a chain
  // of permission prompts. --no-prompt turns a prompt into a failure instead of a test waiting for an answer.
  const command = `'${Deno.execPath()}' run --quiet --no-prompt '${MOD}' server --help`;
  const out = await runProgram("script", ["-qfec", command, "/dev/null"], {
    cwd: ROOT,
    env: { TERM: "dumb" },
  });
  const screen = out.stdout;
  assert.equal(out.code, 0, screen);
  assert.match(screen, /Usage: authchat server \[options\]/);
  assert.doesNotMatch(screen, /Requires|access|Allow\?/);
});
