/**
 * Names of the look-alike tests, shared by the unit and end-to-end tests.
 *
 * @module
 */

/** The look-alikes of "alice" issue 9 found registered next to it, with what differs. */
export const ALICE_LOOK_ALIKES: readonly [string, string][] = [
  ["\u0430lice", "Cyrillic а"],
  ["alic\u0435", "Cyrillic е"],
  ["\u0251lice", "Latin alpha ɑ"],
  ["a\u0142ice", "l with stroke ł"],
  ["AL\u0130CE", "capital I with dot İ"],
];
