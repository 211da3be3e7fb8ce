/**
 * The SCRAM examples of RFC 7677 §3 (SHA-256) and RFC 5802 §5 (SHA-1), shared
 * by the client and server tests. User `user`, password `pencil`.
 *
 * @module
 */

/** One published exchange. */
export interface ScramVector {
  hash: "SHA-256" | "SHA-1";
  username: string;
  password: string;
  clientNonce: string;
  serverNonce: string;
  salt: string;
  iterations: number;
  clientFirst: string;
  serverFirst: string;
  clientFinal: string;
  serverFinal: string;
}

/** RFC 7677 §3. */
export const RFC7677: ScramVector = {
  hash: "SHA-256",
  username: "user",
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  iterations: 4096,
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/** RFC 5802 §5. */
export const RFC5802: ScramVector = {
  hash: "SHA-1",
  username: "user",
  password: "pencil",
  clientNonce: "fyko+d2lbbFgONRv9qkxdawL",
  serverNonce: "3rfcNHYJY1ZVvWVs7j",
  salt: "QSXCR+Q6sek8bf92",
  iterations: 4096,
  clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
  serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
  clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
  serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};
