/**
 * Usage errors: wrong or contradictory flags and invalid configuration. The
 * CLI prints them and exits with status 2.
 *
 * @module
 */

/** A command-line usage error (exit status 2). */
export class UsageError extends Error {
  /**
   * Make a usage error.
   *
   * @param message What is wrong, and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
