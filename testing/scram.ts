// SCRAM-SHA-256 (RFC 5802, with the SHA-256 hash of RFC 7677), both sides, for the tests of MQTT 5
// enhanced authentication: a real challenge–response, so a test proves that the client answered
// a challenge it could only answer knowing the password, and that the broker's side proved it
// knows the password too. Web APIs only (crypto.subtle, TextEncoder, btoa/atob). Passwords are
// used as the UTF-8 of the string given (no SASLprep, RFC 4013): tests use ASCII passwords.
// Channel binding is not supported: the GS2 header is always "n,," (RFC 5802 §7).

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** The GS2 header of a client that neither supports nor requires channel binding. */
const GS2_HEADER = "n,,";
/** The iteration count RFC 7677 §4 asks for at least. */
const DEFAULT_ITERATIONS = 4096;

type Bytes = Uint8Array<ArrayBuffer>;

const base64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const unbase64 = (s: string): Bytes => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const random = (n: number): Bytes => crypto.getRandomValues(new Uint8Array(n));
/** 18 random bytes as base64: printable and without ',' as RFC 5802 §7 requires of a nonce. */
const randomNonce = (): string => base64(random(18));

/** A username as a `saslname` (RFC 5802 §5.1): ',' and '=' escaped. */
const saslname = (name: string) => name.replaceAll("=", "=3D").replaceAll(",", "=2C");
const unsaslname = (name: string) => name.replaceAll("=2C", ",").replaceAll("=3D", "=");

/** The `k=v` attributes of a SCRAM message, by their one-letter name (RFC 5802 §5.1). */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq !== 1) throw new TypeError(`Malformed SCRAM message: attribute '${part}'`);
    out.set(part[0], part.slice(2));
  }
  return out;
}

async function hmac(key: Bytes, data: Bytes): Promise<Bytes> {
  const k = await crypto.subtle.importKey(
    "raw",
    key,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}
const sha256 = async (data: Bytes): Promise<Bytes> =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", data));
const xor = (a: Bytes, b: Bytes): Bytes => a.map((x, i) => x ^ b[i]);
/** Equal bytes, compared in time independent of where they differ. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** ClientKey, StoredKey and ServerKey of a password (RFC 5802 §3). */
interface Keys {
  clientKey: Bytes;
  storedKey: Bytes;
  serverKey: Bytes;
}
async function deriveKeys(password: string, salt: Bytes, iterations: number): Promise<Keys> {
  const material = await crypto.subtle.importKey(
    "raw",
    utf8.encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt, iterations },
      material,
      256,
    ),
  );
  const clientKey = await hmac(salted, utf8.encode("Client Key"));
  return {
    clientKey,
    storedKey: await sha256(clientKey),
    serverKey: await hmac(salted, utf8.encode("Server Key")),
  };
}

/**
 * The client side of SCRAM-SHA-256. One instance runs one exchange at a time; {@linkcode first}
 * starts a new one, so the same instance serves every attempt and every re-authentication.
 *
 * @example
 * ```ts
 * const scram = new ScramClient("user", "pencil");
 * const clientFirst = scram.first(); // CONNECT's (or AUTH 0x19's) Authentication Data
 * const clientFinal = await scram.final(serverFirst); // answers AUTH 0x18
 * await scram.verify(serverFinal); // the CONNACK's or AUTH 0x00's Authentication Data
 * ```
 */
export class ScramClient {
  #nonce = "";
  #clientFirstBare = "";
  #serverSignature?: Bytes;

  // Private, so that printing the client never shows it.
  readonly #password: string;

  /** @param username the name sent in the client-first-message @param password its password */
  constructor(readonly username: string, password: string) {
    this.#password = password;
  }

  /**
   * Starts a new exchange: the client-first-message "n,,n=<user>,r=<nonce>".
   * @param nonce the client nonce, fresh and random unless given (for test vectors)
   */
  first(nonce: string = randomNonce()): Uint8Array {
    if (!nonce || nonce.includes(",")) throw new TypeError("A SCRAM nonce is printable, no ','");
    this.#nonce = nonce;
    this.#clientFirstBare = `n=${saslname(this.username)},r=${nonce}`;
    this.#serverSignature = undefined;
    return utf8.encode(GS2_HEADER + this.#clientFirstBare);
  }

  /**
   * The client-final-message "c=biws,r=<nonce>,p=<proof>" answering `serverFirst`.
   * @throws {Error} before {@linkcode first}, on a malformed server-first-message, or when its
   * nonce does not extend the client's (RFC 5802 §5.1: the server must keep the client's part)
   */
  async final(serverFirst: Uint8Array): Promise<Uint8Array> {
    if (!this.#clientFirstBare) throw new Error("Cannot answer a SCRAM challenge before first()");
    const message = text.decode(serverFirst);
    const a = attributes(message);
    if (a.has("m")) throw new Error("Cannot answer a SCRAM challenge with a mandatory extension");
    const nonce = a.get("r") ?? "", salt = a.get("s"), iterations = Number(a.get("i"));
    if (!nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new Error("Cannot answer a SCRAM challenge whose nonce does not extend the client's");
    }
    if (!salt || !Number.isSafeInteger(iterations) || iterations < 1) {
      throw new Error(`Malformed SCRAM server-first-message: ${message}`);
    }
    const keys = await deriveKeys(this.#password, unbase64(salt), iterations);
    const withoutProof = `c=${btoa(GS2_HEADER)},r=${nonce}`;
    const authMessage = utf8.encode(`${this.#clientFirstBare},${message},${withoutProof}`);
    const proof = xor(keys.clientKey, await hmac(keys.storedKey, authMessage));
    this.#serverSignature = await hmac(keys.serverKey, authMessage);
    return utf8.encode(`${withoutProof},p=${base64(proof)}`);
  }

  /**
   * Checks the server-final-message "v=<signature>": the server knew the password too.
   * @throws {Error} on "e=<error>", a missing or wrong signature, or before {@linkcode final}
   */
  verify(serverFinal: Uint8Array): Promise<void> {
    const expected = this.#serverSignature;
    this.#serverSignature = undefined; // one verdict an exchange
    try {
      if (!expected) throw new Error("Cannot verify a SCRAM server before final()");
      const a = attributes(text.decode(serverFinal));
      if (a.has("e")) throw new Error(`The SCRAM server refused the exchange: ${a.get("e")}`);
      if (!same(unbase64(a.get("v") ?? ""), expected)) {
        throw new Error(
          "The SCRAM server signature is wrong: the server does not know the password",
        );
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** The verdict of {@linkcode ScramExchange.finish}. */
export type ScramResult =
  | { ok: true; username: string; serverFinal: Uint8Array }
  | { ok: false; username: string; reason: string };

/** One exchange a {@linkcode ScramServer} started: send `serverFirst`, then `finish`. */
export interface ScramExchange {
  /** The username of the client-first-message (known to the server or not). */
  readonly username: string;
  /** The server-first-message "r=<nonce>,s=<salt>,i=<iterations>". */
  readonly serverFirst: Uint8Array;
  /** Checks the client-final-message (a wrong one is `ok: false`, not a rejection); once only. */
  finish(clientFinal: Uint8Array): Promise<ScramResult>;
}

/** Options of {@linkcode ScramServer}. */
export interface ScramServerOptions {
  /** The PBKDF2 iteration count. @default 4096 */
  iterations?: number;
}

/** A user's credentials; the keys are derived once, at the first exchange that needs them. */
interface Entry {
  salt: Bytes;
  iterations: number;
  password: string;
  keys?: Promise<Keys>;
}

/**
 * The server side of SCRAM-SHA-256 over a table of users, verifying any number of concurrent
 * exchanges. Passwords can change at runtime; an exchange uses the ones of its `start`.
 *
 * @example
 * ```ts
 * const server = new ScramServer({ user: "pencil" });
 * const exchange = server.start(clientFirst);
 * const result = await exchange.finish(await client.final(exchange.serverFirst));
 * ```
 */
export class ScramServer {
  #users = new Map<string, Entry>();
  readonly #iterations: number;

  /** @param users passwords by username @param options the iteration count */
  constructor(users: Record<string, string> = {}, options: ScramServerOptions = {}) {
    this.#iterations = options.iterations ?? DEFAULT_ITERATIONS;
    for (const [user, password] of Object.entries(users)) this.setPassword(user, password);
  }

  /**
   * Sets (or adds) `user`'s password with a fresh salt, or `salt` (for test vectors); the next
   * exchange to start uses it, those already started keep the old one.
   */
  setPassword(user: string, password: string, salt: Uint8Array = random(16)): void {
    this.#users.set(user, { salt: Uint8Array.from(salt), iterations: this.#iterations, password });
  }

  /**
   * Answers a client-first-message. An unknown user gets a made-up salt and fails at `finish`,
   * as a known user with a wrong password would (no way to probe for names).
   * @param serverNonce the server's part of the nonce, fresh and random unless given
   * @throws {TypeError} on a malformed client-first-message or one asking for channel binding
   */
  start(clientFirst: Uint8Array, serverNonce: string = randomNonce()): ScramExchange {
    const message = text.decode(clientFirst);
    // gs2-header: "n" (no channel binding), an optional "a=" authzid, then the bare message.
    const match = /^(n,(?:a=[^,]*)?,)(.*)$/.exec(message);
    if (!match) throw new TypeError(`Unsupported SCRAM client-first-message: ${message}`);
    const [, gs2Header, bare] = match;
    const a = attributes(bare);
    const username = unsaslname(a.get("n") ?? ""), clientNonce = a.get("r") ?? "";
    if (a.has("m") || !username || !clientNonce) {
      throw new TypeError(`Unsupported SCRAM client-first-message: ${message}`);
    }
    const known = this.#users.get(username);
    const { salt, iterations } = known ?? { salt: random(16), iterations: this.#iterations };
    const nonce = clientNonce + serverNonce;
    const first = `r=${nonce},s=${base64(salt)},i=${iterations}`;
    let finished = false;
    const finish = async (clientFinal: Uint8Array): Promise<ScramResult> => {
      const fail = (reason: string): ScramResult => ({ ok: false, username, reason });
      if (finished) return fail("the exchange is already finished");
      finished = true;
      const final = text.decode(clientFinal);
      const at = final.lastIndexOf(",p=");
      let f: Map<string, string>;
      try {
        f = attributes(final);
      } catch {
        return fail("malformed client-final-message");
      }
      if (at < 0) return fail("no proof in the client-final-message");
      if (f.get("c") !== btoa(gs2Header)) return fail("channel binding differs");
      if (f.get("r") !== nonce) return fail("the nonce differs");
      if (!known) return fail(`unknown user '${username}'`);
      const keys = await (known.keys ??= deriveKeys(known.password, salt, iterations));
      const withoutProof = final.slice(0, at);
      const authMessage = utf8.encode(`${bare},${first},${withoutProof}`);
      let proof: Bytes;
      try {
        proof = unbase64(f.get("p") ?? "");
      } catch {
        return fail("malformed proof");
      }
      const clientKey = xor(proof, await hmac(keys.storedKey, authMessage));
      if (proof.length !== 32 || !same(await sha256(clientKey), keys.storedKey)) {
        return fail("wrong proof (wrong password)");
      }
      const signature = await hmac(keys.serverKey, authMessage);
      return { ok: true, username, serverFinal: utf8.encode(`v=${base64(signature)}`) };
    };
    return { username, serverFirst: utf8.encode(first), finish };
  }
}
