/**
 * A very small schema language for JSON messages. A validator takes an
 * untrusted value and returns it typed, or throws a `BAD_MESSAGE`
 * {@linkcode ProtocolError} naming the field.
 *
 * @module
 */

import { ProtocolError } from "./protocol_error.ts";

/** Validates one value; `path` names it in error messages. */
export type Validator<T> = (value: unknown, path: string) => T;

/** The type a validator produces. */
export type Infer<V> = V extends Validator<infer T> ? T : never;

/** A client-chosen field name in an error path: plain when it is a short identifier, else quoted and cut. */
function member(path: string, name: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(name)) return `${path}.${name}`;
  return `${path}[${JSON.stringify(name.length > 32 ? `${name.slice(0, 32)}…` : name)}]`;
}

function fail(path: string, why: string): never {
  throw new ProtocolError("BAD_MESSAGE", `Invalid field ${path}: ${why}`);
}

/** Options of {@linkcode string}. */
export interface StringOptions {
  /** Most UTF-16 code units accepted. */
  max: number;
  /** Fewest UTF-16 code units accepted (default 0). */
  min?: number;
  /** A pattern the whole string must match. */
  pattern?: RegExp;
}

/**
 * A string of bounded length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { string } from "./schema.ts";
 * assert(string({ max: 3 })("abc", "name") === "abc");
 * ```
 *
 * @param options Length bounds and pattern.
 * @returns The validator.
 */
export function string(options: StringOptions): Validator<string> {
  return (value, path) => {
    if (typeof value !== "string") fail(path, "expected a string");
    if (value.length > options.max) fail(path, `longer than ${options.max} characters`);
    if (value.length < (options.min ?? 0)) fail(path, `shorter than ${options.min} characters`);
    if (options.pattern && !options.pattern.test(value)) fail(path, "has an invalid format");
    return value;
  };
}

/**
 * An integer within bounds.
 *
 * @param min Smallest accepted value.
 * @param max Largest accepted value.
 * @returns The validator.
 */
export function integer(min: number, max: number): Validator<number> {
  return (value, path) => {
    if (typeof value !== "number" || !Number.isInteger(value)) fail(path, "expected an integer");
    if (value < min || value > max) fail(path, `out of range ${min}..${max}`);
    return value;
  };
}

/**
 * A boolean.
 *
 * @returns The validator.
 */
export function boolean(): Validator<boolean> {
  return (value, path) => {
    if (typeof value !== "boolean") fail(path, "expected true or false");
    return value;
  };
}

/**
 * One of a fixed set of strings.
 *
 * @param values The accepted strings.
 * @returns The validator.
 */
export function literal<const T extends string>(...values: T[]): Validator<T> {
  return (value, path) => {
    if (typeof value !== "string" || !(values as string[]).includes(value)) {
      fail(path, `expected one of ${values.join(", ")}`);
    }
    return value as T;
  };
}

/**
 * A list of bounded length.
 *
 * @param item Validator of each element.
 * @param max Most elements accepted.
 * @returns The validator.
 */
export function array<T>(item: Validator<T>, max: number): Validator<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) fail(path, "expected a list");
    if (value.length > max) fail(path, `more than ${max} elements`);
    return value.map((v, i) => item(v, `${path}[${i}]`));
  };
}

/** Marks a validator whose field may be absent. */
export interface OptionalValidator<T> extends Validator<T | undefined> {
  /** Tag read by {@linkcode object}. */
  readonly optional: true;
}

/**
 * Let a field be absent (or `null`, which is read as absent).
 *
 * @param inner Validator used when the field is present.
 * @returns The validator.
 */
export function optional<T>(inner: Validator<T>): OptionalValidator<T> {
  const v =
    ((value: unknown, path: string) =>
      value === undefined || value === null ? undefined : inner(value, path)) as OptionalValidator<T>;
  Object.defineProperty(v, "optional", { value: true });
  return v;
}

type Shape = Record<string, Validator<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends OptionalValidator<unknown> ? K : never;
}[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;

/** The object type described by a shape: optional validators become optional properties. */
export type ObjectOf<S extends Shape> =
  & { [K in RequiredKeys<S>]: Infer<S[K]> }
  & { [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined> };

/** Options of {@linkcode object}. */
export interface ObjectOptions {
  /** Ignore fields the shape does not name instead of refusing them. */
  allowExtra?: boolean;
}

/**
 * A plain object with exactly the fields of `shape` (extra fields refused unless allowed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integer, object, optional, string } from "./schema.ts";
 * const hello = object({ version: integer(1, 9), name: optional(string({ max: 9 })) });
 * assert(hello({ version: 1 }, "msg").version === 1);
 * ```
 *
 * @param shape Field name to validator.
 * @param options Whether extra fields are tolerated.
 * @returns The validator.
 */
export function object<S extends Shape>(shape: S, options: ObjectOptions = {}): Validator<ObjectOf<S>> {
  return (value, path) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "expected an object");
    const record = value as Record<string, unknown>;
    if (!options.allowExtra) {
      for (const key of Object.keys(record)) {
        if (!Object.hasOwn(shape, key)) fail(member(path, key), "unknown field");
      }
    }
    const out: Record<string, unknown> = {};
    for (const [key, validate] of Object.entries(shape)) {
      const field = Object.hasOwn(record, key) ? record[key] : undefined;
      if (field === undefined && !("optional" in validate)) fail(`${path}.${key}`, "missing");
      const checked = validate(field, `${path}.${key}`);
      if (checked !== undefined) out[key] = checked;
    }
    return out as ObjectOf<S>;
  };
}
