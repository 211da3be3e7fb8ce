/**
 * The embedded default of the server's shared parts: presence, the abuse
 * limits and the session directory of one process, in its memory, set from
 * the configuration. A server alone (`deno task start`) runs on these.
 *
 * @module
 */

import { LoginBudget } from "../auth/login_budget.ts";
import type { LoginBudgetOptions } from "../auth/login_budget.ts";
import { RateLimiter } from "../auth/rate_limiter.ts";
import type { RateLimiterOptions } from "../auth/rate_limiter.ts";
import { TokenBucket } from "../auth/token_bucket.ts";
import type { TokenBucketOptions } from "../auth/token_bucket.ts";
import { LocalPresence } from "./presence.ts";
import { DEFAULT_NOTICE_INTERVAL_MS } from "./presence_coalescer.ts";
import type { ServerConfig } from "./server_config.ts";
import { LocalAbuseLimits, NO_OTHER_NODES } from "./shared_parts.ts";
import type { SharedParts } from "./shared_parts.ts";

/** How long a user whose last session left cleanly stays online, so a reconnect or re-login does not flap. */
export const PRESENCE_LINGER_MS = 1000;

/** The settings the abuse limits take from the configuration. */
export type LimitSettings = Pick<
  ServerConfig,
  | "failures_before_backoff"
  | "backoff_base"
  | "backoff_max"
  | "max_unauthenticated_per_ip"
  | "registrations_per_minute"
  | "logins_per_minute_per_account"
  | "logins_per_minute_per_source"
>;

/** The options of the failure counters and budgets, whichever implementation keeps them. */
export interface LimitOptions {
  /** Failure counters and backoff. */
  limiter: RateLimiterOptions;
  /** Registrations per source. */
  registrations: TokenBucketOptions;
  /** Successful logins per source and per account. */
  logins: LoginBudgetOptions;
}

/**
 * The failure counters' and budgets' options, as the configuration sets them: the in-process limits and
 * a shared implementation read the same.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { limitOptions } from "./local_parts.ts";
 * import { loadServerConfig } from "./server_config.ts";
 * const options = limitOptions(await loadServerConfig({ file: "/dev/null" }));
 * assert(options.limiter.freeFailures === 5 && options.limiter.baseMs === 1000);
 * ```
 *
 * @param config The settings.
 * @returns The options.
 */
export function limitOptions(config: LimitSettings): LimitOptions {
  return {
    limiter: {
      freeFailures: config.failures_before_backoff,
      baseMs: config.backoff_base * 1000,
      maxMs: config.backoff_max * 1000,
      forgetAfterMs: Math.max(3_600_000, config.backoff_max * 2000),
      maxEntries: 100_000,
      // As many proofs at once as a source may hold connections that are not logged in.
      maxParallel: config.max_unauthenticated_per_ip,
    },
    registrations: { perMinute: config.registrations_per_minute },
    logins: {
      perAccountPerMinute: config.logins_per_minute_per_account,
      perSourcePerMinute: config.logins_per_minute_per_source,
    },
  };
}

/**
 * The in-process failure counters and budgets, as the configuration sets them.
 *
 * @param config The settings.
 * @returns The counters.
 */
export function localLimitParts(config: LimitSettings): {
  limiter: RateLimiter;
  registrations: TokenBucket;
  logins: LoginBudget;
} {
  const options = limitOptions(config);
  return {
    limiter: new RateLimiter(options.limiter),
    registrations: new TokenBucket(options.registrations),
    logins: new LoginBudget(options.logins),
  };
}

/**
 * The shared parts of a server alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localSharedParts } from "./local_parts.ts";
 * import { loadServerConfig } from "./server_config.ts";
 * const parts = localSharedParts(await loadServerConfig({ file: "/dev/null" }));
 * assert((await parts.limits.retryAfter("10.0.0.1", "alice", 0)) === 0);
 * assert(parts.presence.get("alice") === undefined);
 * ```
 *
 * @param config The server's configuration.
 * @returns In-process presence (coalesced notices, a short linger), limits and no other nodes.
 */
export function localSharedParts(config: LimitSettings): SharedParts {
  return {
    presence: new LocalPresence({
      lingerMs: PRESENCE_LINGER_MS,
      noticeIntervalMs: DEFAULT_NOTICE_INTERVAL_MS,
    }),
    sessions: NO_OTHER_NODES,
    limits: new LocalAbuseLimits(localLimitParts(config)),
  };
}
