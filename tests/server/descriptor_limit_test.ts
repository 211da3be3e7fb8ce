import assert from "node:assert/strict";
import {
  ASSUMED_LIMIT,
  connectionCap,
  countFreeDescriptors,
  defaultConnectionCap,
  DESCRIPTOR_RESERVE,
  parseOpenFilesLimit,
  PROBE_BOUND,
  probeBound,
} from "../../lib/server/descriptor_limit.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            4096                 524288               files     
Max locked memory         8388608              8388608              bytes     
`;

/** An error as Deno throws it when a process has no descriptor left. */
function emfile(): Error {
  return Object.assign(new Error("Too many open files (os error 24): open '/dev/null'"), { code: "EMFILE" });
}

/** An `open` that gives `free` descriptors, then fails with `error`; counts what is still open. */
function fakeOpen(free: number, error: () => Error = emfile) {
  const state = { opened: 0, open: 0 };
  const open = () => {
    if (state.opened === free) throw error();
    state.opened++;
    state.open++;
    return { close: () => void state.open-- };
  };
  return { state, open };
}

const noProc = () => {
  throw new Deno.errors.NotCapable('Requires all access to "/proc/self/limits"');
};

Deno.test("parseOpenFilesLimit reads the soft limit of open files", () => {
  assert.equal(parseOpenFilesLimit(LIMITS), 4096);
  assert.equal(
    parseOpenFilesLimit("Max open files            unlimited            unlimited            files"),
    null,
  );
  assert.equal(parseOpenFilesLimit(""), null);
});

Deno.test("countFreeDescriptors reads /proc when it may, less the descriptors open", () => {
  const probe = fakeOpen(10);
  const found = countFreeDescriptors({ readProc: () => ({ limits: LIMITS, open: 30 }), open: probe.open });
  assert.deepEqual(found, { free: 4066, atLeast: false, found: "proc", limit: 4096 });
  assert.equal(probe.state.opened, 0, "no probe when /proc says");
});

Deno.test("countFreeDescriptors probes /dev/null until EMFILE when /proc is not allowed, and closes all", () => {
  const probe = fakeOpen(229);
  assert.deepEqual(countFreeDescriptors({ readProc: noProc, open: probe.open }), {
    free: 229,
    atLeast: false,
    found: "probe",
  });
  assert.equal(probe.state.open, 0, "every descriptor opened is closed again");
});

Deno.test("countFreeDescriptors stops the probe at its bound and says the count is a lower bound", () => {
  const probe = fakeOpen(1_000_000);
  assert.deepEqual(countFreeDescriptors({ readProc: noProc, open: probe.open, bound: 500 }), {
    free: 500,
    atLeast: true,
    found: "probe",
  });
  assert.equal(probe.state.opened, 500);
  assert.equal(probe.state.open, 0);
});

Deno.test("countFreeDescriptors assumes the common limit when it may neither read /proc nor probe", () => {
  const probe = fakeOpen(0, () => new Deno.errors.NotCapable('Requires read access to "/dev/null"'));
  assert.deepEqual(countFreeDescriptors({ readProc: noProc, open: probe.open }), {
    free: ASSUMED_LIMIT,
    atLeast: false,
    found: "assumed",
  });
  const unreadable = countFreeDescriptors({ readProc: () => ({ limits: "", open: 3 }), open: probe.open });
  assert.equal(unreadable.found, "assumed", "a /proc without the line counts as unreadable");
});

Deno.test("countFreeDescriptors finds this process's descriptors for real", () => {
  const found = countFreeDescriptors({ bound: 64 });
  assert.ok(found.free > 0);
  assert.notEqual(found.found, "assumed");
});

Deno.test("defaultConnectionCap keeps a reserve, and half of a small limit", () => {
  assert.equal(defaultConnectionCap(1024), 1024 - DESCRIPTOR_RESERVE);
  assert.equal(defaultConnectionCap(229), 165);
  assert.equal(defaultConnectionCap(100), 50);
  assert.equal(defaultConnectionCap(1), 1);
  assert.equal(defaultConnectionCap(0), 1);
});

Deno.test("connectionCap takes max_connections when set, and says when it exceeds the descriptors", () => {
  const probe = { free: 1000, atLeast: false, found: "probe" as const };
  assert.deepEqual(connectionCap(0, probe), { cap: 936, configured: false, exceedsDescriptors: false });
  assert.deepEqual(connectionCap(900, probe), { cap: 900, configured: true, exceedsDescriptors: false });
  assert.deepEqual(connectionCap(937, probe), { cap: 937, configured: true, exceedsDescriptors: true });
  assert.deepEqual(
    connectionCap(50_000, { free: 16_384, atLeast: true, found: "probe" }),
    { cap: 50_000, configured: true, exceedsDescriptors: false },
    "a lower bound cannot tell",
  );
});

Deno.test("probeBound counts only what a configured cap needs, and the verdict is the same as a full count's", () => {
  assert.equal(probeBound(0), PROBE_BOUND, "a derived cap needs every free descriptor, up to the bound");
  assert.equal(probeBound(100), 100 + DESCRIPTOR_RESERVE);
  assert.equal(probeBound(PROBE_BOUND), PROBE_BOUND, "never more than the bound");
  for (const configured of [1, 100, 936, 5000]) {
    for (const free of [50, configured + DESCRIPTOR_RESERVE - 1, configured + DESCRIPTOR_RESERVE, 20_000]) {
      const full = countFreeDescriptors({ readProc: noProc, open: fakeOpen(free).open, bound: 1_000_000 });
      const probe = fakeOpen(free);
      const early = countFreeDescriptors({
        readProc: noProc,
        open: probe.open,
        bound: probeBound(configured),
      });
      assert.ok(probe.state.opened <= configured + DESCRIPTOR_RESERVE);
      assert.deepEqual(
        connectionCap(configured, early),
        connectionCap(configured, full),
        `max_connections ${configured}, ${free} free`,
      );
    }
  }
});
