/**
 * The errors of joining the nodes that the composition root (cmd/server.ts)
 * tells apart, and how a bus URL is shown, in a module that loads no NATS
 * client: a server without a bus never loads one.
 *
 * @module
 */

/** NATS could not be reached. */
export class BusUnavailableError extends Error {
  /**
   * Make the error.
   *
   * @param message What failed.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BusUnavailableError";
  }
}

/** Another process holds this node's id. */
export class NodeIdConflictError extends Error {
  /**
   * Make the error.
   *
   * @param nodeId The id in dispute.
   * @param detail What was seen.
   */
  constructor(nodeId: string, detail: string) {
    super(`node_id ${nodeId} is in use by another live server: ${detail}; give each node its own node_id`);
    this.name = "NodeIdConflictError";
  }
}

/**
 * `nats://user:password@host:port` shown without its password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shownUrl } from "./bus_errors.ts";
 * assert(shownUrl("nats://app:s3cret@10.0.0.5:4222") === "nats://app:***@10.0.0.5:4222");
 * ```
 *
 * @param url A server URL.
 * @returns It, with `***` for its password.
 */
export function shownUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}
