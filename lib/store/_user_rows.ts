/**
 * The rows both user stores read, and their conversion to records: one conversion for SQLite and
 * PostgreSQL, whose drivers hand back the same columns with other types (SQLite numbers for booleans,
 * PostgreSQL strings for `bigint`).
 *
 * @module
 */

import type { Credentials, UserRecord } from "./user_store.ts";

/** A `users` row as a driver returns it. */
export interface UserRow {
  /** Row id. */
  id: number | string;
  /** Name as chosen. */
  name: string;
  /** Lower-cased name. */
  name_key: string;
  /** The verifier. */
  verifier: string;
  /** Creation time, ms. */
  created_at: number | string;
  /** Latest login, ms. */
  last_login_at: number | string | null;
  /** Identity public key. */
  identity_key: Uint8Array | null;
  /** Sealed key backup. */
  key_backup: string | null;
  /** `true`/`false`, or SQLite's `1`/`0`. */
  must_change_password: boolean | number;
}

/** The one row of a credentials query (see {@linkcode credentialsOf}). */
export interface CredentialsRow {
  /** `true`/`false`, or SQLite's `1`/`0`. */
  found: boolean | number;
  /** Row id, `0` when not found. */
  id: number | string;
  /** Name, or the name key asked for. */
  name: string;
  /** Verifier, or the decoy. */
  verifier: string;
  /** `true`/`false`, or SQLite's `1`/`0`. */
  must_change_password: boolean | number;
}

/** A boolean column of either driver (`Number(true)` and SQLite's `1` are both 1). */
function flag(value: boolean | number): boolean {
  return Number(value) === 1;
}

/**
 * The record of a `users` row.
 *
 * @param row The row.
 * @returns The record.
 */
export function userRecordOf(row: UserRow): UserRecord {
  return {
    id: Number(row.id),
    name: row.name,
    nameKey: row.name_key,
    verifier: row.verifier,
    createdAt: Number(row.created_at),
    lastLoginAt: row.last_login_at === null ? null : Number(row.last_login_at),
    identityKey: row.identity_key === null ? null : new Uint8Array(row.identity_key),
    keyBackup: row.key_backup,
    mustChangePassword: flag(row.must_change_password),
  };
}

/**
 * The credentials of a credentials row, converted the same way whether or not the name has an account
 * (no branch on `found`).
 *
 * @param row The row.
 * @returns The credentials.
 */
export function credentialsOf(row: CredentialsRow): Credentials {
  return {
    found: flag(row.found),
    id: Number(row.id),
    name: row.name,
    verifier: row.verifier,
    mustChangePassword: flag(row.must_change_password),
  };
}
