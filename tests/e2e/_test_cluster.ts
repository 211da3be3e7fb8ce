/**
 * Several real `authchat server` nodes joined as docs/DEPLOY.md joins them: one PostgreSQL database (a fresh
 * one per cluster, dropped after), one NATS server, and a data directory per node holding a copy of one
 * identity (certificate, TLS key, sealing keys). The nodes use the bus's default prefix, as a deployment
 * does, so every `authchat_*` key-value bucket on that NATS server (node liveness and presence, the abuse
 * limits, the relay's slots and endpoints) is destroyed before the nodes start and after they stop: a test
 * never sees what an earlier test left there. The cluster tests run one after another (`deno test` runs
 * files serially); nothing else may use the default prefix on the test NATS server meanwhile.
 *
 * @module
 */

import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { freshPostgresDatabase, natsUrl } from "../_cluster_services.ts";
import type { TestPostgresDatabase } from "../_cluster_services.ts";
import { installKeys, ServerProcess } from "./_harness.ts";

/** The bus prefix the servers use (they offer no other: `NatsBus`'s default). */
export const BUS_PREFIX = "authchat";

/**
 * Destroy every key-value bucket of a prefix on a NATS server.
 *
 * @param url The NATS server.
 * @param prefix The prefix (default {@linkcode BUS_PREFIX}): buckets named `<prefix>_…` go.
 * @returns The names of the buckets destroyed.
 */
export async function clearBus(url: string, prefix: string = BUS_PREFIX): Promise<string[]> {
  const nc = await connect({ servers: [url], name: "authchat e2e cleanup" });
  try {
    const kvm = new Kvm(nc);
    const names: string[] = [];
    for await (const status of kvm.list()) {
      if (status.bucket.startsWith(`${prefix}_`)) names.push(status.bucket);
    }
    for (const name of names) await (await kvm.open(name)).destroy();
    return names;
  } finally {
    await nc.close();
  }
}

/** Options of {@linkcode TestCluster.start}. */
export interface TestClusterOptions {
  /** How many nodes (default 3). */
  nodes?: number;
  /** More server flags for every node. */
  args?: string[];
  /** More environment for every node. */
  env?: Record<string, string>;
  /** Node ids are this and the node's number, from 1 (default `node`). */
  idPrefix?: string;
  /**
   * Configure node `n` (from 1) another way: the flags it gets instead of `--bus` and `--node-id`, and the
   * environment instead of `AUTHCHAT_DATABASE` (a configuration file that names the bus and the database).
   */
  configure?: (n: number, services: ClusterServices) => Promise<NodeSetup>;
}

/** Where a cluster's services are, for {@linkcode TestClusterOptions.configure}. */
export interface ClusterServices {
  /** The cluster's database. */
  database: TestPostgresDatabase;
  /** The NATS server's URL. */
  nats: string;
  /** The node's data directory (its keys are in place). */
  dataDir: string;
}

/** A node's flags and environment. */
export interface NodeSetup {
  /** Flags after the data directory and the ports (which are 0). */
  args: string[];
  /** Environment additions. */
  env: Record<string, string>;
}

/** Nodes on one PostgreSQL database and one NATS server. */
export class TestCluster {
  /** The nodes, in order (node 1 first). */
  readonly nodes: ServerProcess[];
  /** Their database. */
  readonly database: TestPostgresDatabase;
  /** The NATS server's URL. */
  readonly nats: string;
  /** Each node's data directory. */
  readonly dataDirs: string[];

  private constructor(
    nodes: ServerProcess[],
    database: TestPostgresDatabase,
    nats: string,
    dataDirs: string[],
  ) {
    this.nodes = nodes;
    this.database = database;
    this.nats = nats;
    this.dataDirs = dataDirs;
  }

  /**
   * Empty the bus, make a database, and start the nodes together (so they also race for the migrations,
   * which run once under an advisory lock).
   *
   * @param dir A scratch directory (the nodes' data directories go in it).
   * @param options Node count, flags, environment, node ids.
   * @returns The running cluster; dispose it (`await using`).
   * @throws {Error} When the services are not set or a node does not start (after cleaning up).
   */
  static async start(dir: string, options: TestClusterOptions = {}): Promise<TestCluster> {
    const nats = natsUrl();
    if (nats === undefined) throw new Error("No NATS for the tests: AUTHCHAT_TEST_NATS is not set");
    await clearBus(nats);
    const database = await freshPostgresDatabase();
    const count = options.nodes ?? 3;
    const dataDirs = Array.from({ length: count }, (_, i) => join(dir, `node${i + 1}-data`));
    const started = await Promise.allSettled(dataDirs.map(async (data, i) => {
      // Every node serves one identity: copies of the same keys (as docs/DEPLOY.md copies them).
      await installKeys(data);
      const setup = options.configure ? await options.configure(i + 1, { database, nats, dataDir: data }) : {
        args: ["--bus", nats, "--node-id", `${options.idPrefix ?? "node"}${i + 1}`],
        // The URL holds the test role's password: in the environment, not on a command line.
        env: { AUTHCHAT_DATABASE: database.url },
      };
      return await ServerProcess.start(data, {
        args: [...setup.args, ...options.args ?? []],
        env: { ...setup.env, ...options.env },
      });
    }));
    const nodes = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    const cluster = new TestCluster(nodes, database, nats, dataDirs);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      await cluster[Symbol.asyncDispose]();
      throw failed.reason;
    }
    return cluster;
  }

  /**
   * Node `n`, counting from 1.
   *
   * @param n Its number.
   * @returns The node.
   */
  node(n: number): ServerProcess {
    const node = this.nodes[n - 1];
    if (!node) throw new RangeError(`No node ${n}: the cluster has ${this.nodes.length}`);
    return node;
  }

  /**
   * Stop every node still running with SIGTERM, as an operator would, together.
   *
   * @returns Each node's exit status, in order.
   */
  stop(): Promise<Deno.CommandStatus[]> {
    return Promise.all(this.nodes.map((node) => node.stop()));
  }

  /** Kill what still runs, empty the bus and drop the database. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
    try {
      await clearBus(this.nats);
    } finally {
      await this.database[Symbol.asyncDispose]();
    }
  }
}
