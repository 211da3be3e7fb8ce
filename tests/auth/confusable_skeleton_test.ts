import assert from "node:assert/strict";
import { nameSkeletons, skeleton } from "../../lib/auth/confusable_skeleton.ts";
import { prepareNewUsername } from "../../lib/auth/username.ts";
import { ALICE_LOOK_ALIKES } from "./_look_alikes.ts";

/** Whether two names look alike by the rule new names are held to. */
function lookAlike(a: string, b: string): boolean {
  const [x, y] = [a, b].map((name) => {
    const { name: stored, key } = prepareNewUsername(name);
    return nameSkeletons(stored, key);
  });
  return x!.folded === y!.folded || x!.shown === y!.shown;
}

Deno.test("skeleton is UTS #39's: prototypes from confusables.txt, NFD, default-ignorables removed", () => {
  assert.equal(skeleton("\u0430lice"), "alice");
  assert.equal(skeleton("m"), "rn");
  assert.equal(skeleton("\u{1D52D}\u{1D4B6}\u1EFF\u{1D561}\u{1D552}\u2113"), "paypal");
  assert.equal(skeleton("a\u200Bl\u00ADice"), "alice");
  assert.equal(skeleton("\u0142"), "l\u0338", "ł is l with an overlay: the skeleton keeps the mark");
  assert.equal(skeleton("\u00E9"), "e\u0301");
  assert.equal(skeleton("0"), "O");
});

Deno.test("nameSkeletons makes every look-alike of alice issue 9 lists equal to alice", () => {
  for (const [name, what] of ALICE_LOOK_ALIKES) assert.ok(lookAlike(name, "alice"), `${what}: ${name}`);
});

Deno.test("nameSkeletons catches mixed-script and whole-script look-alikes", () => {
  assert.ok(lookAlike("p\u0430yp\u0430l", "paypal"), "Latin with Cyrillic а");
  assert.ok(lookAlike("\u0440\u0430\u0443\u0440\u0430l", "paypal"), "Cyrillic р а у р а and a Latin l");
  assert.ok(lookAlike("\u0441\u043E\u0440\u0435", "cope"), "all Cyrillic");
  assert.ok(lookAlike("\u039Fscar", "Oscar"), "Greek capital omicron");
  assert.ok(lookAlike("\u03BFscar", "oscar"), "Greek small omicron");
});

Deno.test("nameSkeletons catches digits, letter pairs and case look-alikes", () => {
  assert.ok(lookAlike("a1ice", "alice"), "1 and l");
  assert.ok(lookAlike("aIice", "alice"), "capital I and l, as shown");
  assert.ok(lookAlike("b0b", "bob"), "0 and o in any case");
  assert.ok(lookAlike("rnary", "mary"), "rn and m");
  assert.ok(lookAlike("ALICE", "alice"));
});

Deno.test("nameSkeletons catches fullwidth forms and combining marks on Latin, Greek and Cyrillic letters", () => {
  assert.ok(lookAlike("\uFF41lice", "alice"), "fullwidth a");
  assert.ok(lookAlike("a\u0301lice", "alice"), "a combining acute accent");
  assert.ok(lookAlike("\u0105lice", "alice"), "a with ogonek");
  assert.ok(lookAlike("jos\u00E9", "jose"));
  assert.ok(lookAlike("bj\u00F8rn", "bjorn"));
  assert.ok(lookAlike("\u039D\u03AF\u03BA\u03BF\u03C2", "\u039D\u03B9\u03BA\u03BF\u03C2"), "Greek tonos");
});

Deno.test("nameSkeletons keeps names apart that do not look alike", () => {
  for (
    const [a, b] of [
      ["alice", "alicia"],
      ["alice", "bob"],
      ["alice", "alice2"],
      ["alice", "allce"],
      ["anna", "hanna"],
      // Marks are vowels in other scripts: they are kept.
      ["\u091C\u094B\u0936\u0940", "\u091C\u0936\u0940"],
      ["\u05E9\u05B8\u05DC\u05D5\u05DD", "\u05E9\u05DC\u05D5\u05DD"],
    ]
  ) {
    assert.ok(!lookAlike(a!, b!), `${a} and ${b}`);
  }
});
