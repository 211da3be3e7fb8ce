/**
 * Leak search for the end-to-end tests: look for a secret in captured bytes
 * (wire traffic, database files, logs) in any of the encodings it could
 * plausibly be stored or logged in.
 *
 * @module
 */

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The forms a secret could be stored or logged in: raw bytes, hex in either
 * case, and base64 and base64url at each of the three byte alignments (only
 * the whole groups, which do not depend on the bytes around the secret).
 */
function forms(secret: Uint8Array): Map<string, string> {
  const out = new Map<string, string>([
    ["raw", latin1(secret)],
    ["hex", hex(secret)],
    ["HEX", hex(secret).toUpperCase()],
  ]);
  for (let k = 0; k < 3; k++) {
    const part = secret.subarray(k, k + Math.floor((secret.length - k) / 3) * 3);
    const b64 = btoa(latin1(part));
    out.set(`base64@${k}`, b64);
    out.set(`base64url@${k}`, b64.replaceAll("+", "-").replaceAll("/", "_"));
  }
  return out;
}

/**
 * Look for a secret in captured bytes, in any of its usual encodings. A long
 * secret is searched as windows of `window` bytes at a stride of `window`, so
 * any leaked contiguous piece of twice that length is found.
 *
 * @param haystack Captured bytes.
 * @param secret What must not be there.
 * @param window Window length for long secrets.
 * @returns The form and offset found, or `null`.
 */
export function findSecret(haystack: Uint8Array, secret: Uint8Array, window = 24): string | null {
  const text = latin1(haystack);
  for (const [name, form] of forms(secret)) {
    if (form.length === 0) continue;
    const pieces = form.length <= 2 * window
      ? [form]
      : Array.from({ length: Math.floor(form.length / window) }, (_, i) =>
        form.slice(i * window, (i + 1) * window));
    for (const piece of pieces) {
      const at = text.indexOf(piece);
      if (at >= 0) return `${name} at byte ${at}`;
    }
  }
  return null;
}
