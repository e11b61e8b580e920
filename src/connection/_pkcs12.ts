// Reads the certificates of a PKCS12 trust store (RFC 7292), as Java's keytool and
// `openssl pkcs12 -export -nokeys` write them: Node, Deno and Bun's TLS accept PKCS12
// only with a private key in it, so a trust store must be turned into PEM here. And checks
// a key store's password before the runtime's TLS sees it: on a wrong one, TLS throws a
// plain Error ("mac verify failure") only when it connects.
// WebCrypto only: PBES2 (PBKDF2 + AES-CBC) encryption and the PKCS12 HMAC integrity
// check (RFC 7292 appendix B key derivation). The legacy RC2/3DES encryptions have no
// WebCrypto counterpart and get an error that says how to convert the store.
import { MqttOptionsError } from "../errors.ts";

interface Der {
  tag: number;
  /** The content octets. */
  body: Uint8Array;
  /** The whole element, tag and length included. */
  whole: Uint8Array;
}

const OID = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  pbes2: "1.2.840.113549.1.5.13",
  pbkdf2: "1.2.840.113549.1.5.12",
} as const;

const HASHES: Record<string, { name: string; block: number }> = {
  "1.3.14.3.2.26": { name: "SHA-1", block: 64 },
  "2.16.840.1.101.3.4.2.1": { name: "SHA-256", block: 64 },
  "2.16.840.1.101.3.4.2.2": { name: "SHA-384", block: 128 },
  "2.16.840.1.101.3.4.2.3": { name: "SHA-512", block: 128 },
};
const PRFS: Record<string, string> = {
  "1.2.840.113549.2.7": "SHA-1",
  "1.2.840.113549.2.9": "SHA-256",
  "1.2.840.113549.2.10": "SHA-384",
  "1.2.840.113549.2.11": "SHA-512",
};
const AES_CBC: Record<string, number> = {
  "2.16.840.1.101.3.4.1.2": 16,
  "2.16.840.1.101.3.4.1.22": 24,
  "2.16.840.1.101.3.4.1.42": 32,
};

/**
 * The X.509 certificates of a PKCS12 file, as PEM text. Verifies the file's integrity
 * MAC when a password is given (as Java does, it skips the check without one).
 *
 * @throws {MqttOptionsError} naming `option` when the file is damaged, the password is
 * wrong, or the encryption is one this reader does not support.
 */
export async function pkcs12Certificates(
  file: Uint8Array,
  password: string | undefined,
  option: string,
): Promise<string[]> {
  const fail = (why: string) =>
    new MqttOptionsError(
      option,
      `Cannot configure MQTT as '${option}' must be a readable PKCS12 trust store: ${why}`,
    );
  try {
    const [version, authSafe, macData] = children(read(file));
    if (int(version) !== 3) throw fail(`version ${int(version)} is not PKCS12 v3`);
    const content = contentOf(authSafe);
    if (
      macData && password !== undefined &&
      !(await macMatches(macData, content, bmpPassword(password)))
    ) {
      throw fail("the password is wrong or the file was altered (integrity check failed)");
    }
    const certificates: string[] = [];
    for (const info of children(read(content))) {
      const [type, wrapped] = children(info);
      let safeContents: Uint8Array;
      if (oid(type) === OID.data) safeContents = read(wrapped.body).body;
      else if (oid(type) === OID.encryptedData) {
        if (password === undefined) {
          throw fail("its certificates are encrypted; set ssl.trust.store.password");
        }
        safeContents = await decrypt(children(read(wrapped.body))[1], password, fail);
      } else continue;
      for (const bag of children(read(safeContents))) {
        const [bagId, bagValue] = children(bag);
        if (oid(bagId) !== OID.certBag) continue;
        const [certId, certValue] = children(read(bagValue.body));
        if (oid(certId) === OID.x509Certificate) {
          certificates.push(toPem(read(read(certValue.body).body).whole));
        }
      }
    }
    if (certificates.length === 0) throw fail("it holds no certificate");
    return certificates;
  } catch (error) {
    if (error instanceof MqttOptionsError) throw error;
    throw fail(`it is not valid DER (${(error as Error).message})`);
  }
}

/**
 * Checks `password` against the integrity MAC of the PKCS12 key store `file` (option
 * `ssl.key.store`), as the runtime's TLS will. Without a password (or an empty one), the
 * store must open with none, as OpenSSL tries it. A file this reader cannot check (not
 * DER, no MAC, an unknown MAC algorithm) is left to the TLS layer.
 *
 * @throws {MqttOptionsError} naming "ssl.key.store.password" when the password does not
 * open the store; the password itself is never part of the message.
 */
export async function checkKeyStorePassword(
  file: Uint8Array,
  password: string | undefined,
): Promise<void> {
  let macData: Der | undefined;
  let content: Uint8Array;
  try {
    const [version, authSafe, mac] = children(read(file));
    if (int(version) !== 3 || !mac) return;
    [macData, content] = [mac, contentOf(authSafe)];
  } catch {
    return;
  }
  const candidates = password
    ? [bmpPassword(password), legacyBmpPassword(password)]
    : [bmpPassword(""), new Uint8Array()]; // OpenSSL tries "" and no password at all
  try {
    for (const candidate of candidates) {
      if (await macMatches(macData, content, candidate)) return;
    }
  } catch {
    return; // an unsupported MAC algorithm: TLS will say
  }
  const option = "ssl.key.store.password";
  throw new MqttOptionsError(
    option,
    password
      ? `Cannot connect as '${option}' does not open the PKCS12 key store 'ssl.key.store': the password is wrong or the file was altered (its integrity check failed)`
      : `Cannot connect as the PKCS12 key store 'ssl.key.store' needs a password: set '${option}'`,
  );
}

/** The content of a ContentInfo of type data: the OCTET STRING inside [0]. */
function contentOf(contentInfo: Der): Uint8Array {
  const [type, explicit] = children(contentInfo);
  if (oid(type) !== OID.data) throw new Error("the authenticated safe is not of type data");
  return read(explicit.body).body;
}

async function decrypt(
  encryptedContentInfo: Der,
  password: string,
  fail: (why: string) => Error,
): Promise<Uint8Array> {
  const [, algorithm, encrypted] = children(encryptedContentInfo);
  const [algOid, params] = children(algorithm);
  if (oid(algOid) !== OID.pbes2) {
    throw fail(
      `its certificates use a legacy encryption (${oid(algOid)}, RC2 or 3DES); convert it with ` +
        "openssl pkcs12 -legacy -in store.p12 -nokeys -out ca.pem and set ssl.trust.store.type=PEM",
    );
  }
  const [kdf, scheme] = children(params);
  const [kdfOid, kdfParams] = children(kdf);
  if (oid(kdfOid) !== OID.pbkdf2) throw fail(`its key derivation ${oid(kdfOid)} is not PBKDF2`);
  const kdfFields = children(kdfParams);
  const salt = kdfFields[0].body;
  const iterations = int(kdfFields[1]);
  const prfField = kdfFields.slice(2).find((f) => f.tag === 0x30);
  const hash = prfField ? PRFS[oid(children(prfField)[0])] : "SHA-1";
  const [schemeOid, iv] = children(scheme);
  const keyLength = AES_CBC[oid(schemeOid)];
  if (!hash || !keyLength) {
    throw fail(`its cipher ${oid(schemeOid)} is not AES-CBC with PBKDF2-HMAC-SHA`);
  }
  const base = await crypto.subtle.importKey(
    "raw",
    buffer(new TextEncoder().encode(password)),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", salt: buffer(salt), iterations, hash },
    base,
    keyLength * 8,
  );
  const key = await crypto.subtle.importKey("raw", bits, "AES-CBC", false, ["decrypt"]);
  try {
    // encryptedContent is [0] IMPLICIT OCTET STRING: its body is the ciphertext.
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-CBC", iv: buffer(iv.body) },
        key,
        buffer(encrypted.body),
      ),
    );
  } catch {
    throw fail("the password is wrong (the certificates cannot be decrypted)");
  }
}

/**
 * Checks the MacData (RFC 7292 §4): HMAC over the authenticated safe, key from appendix B,
 * with `password` already a BMPString.
 */
async function macMatches(
  macData: Der,
  content: Uint8Array,
  password: Uint8Array,
): Promise<boolean> {
  const [digestInfo, macSalt, iterationsField] = children(macData);
  const [algorithm, digest] = children(digestInfo);
  const hash = HASHES[oid(children(algorithm)[0])];
  if (!hash) throw new Error(`unsupported MAC algorithm ${oid(children(algorithm)[0])}`);
  const iterations = iterationsField ? int(iterationsField) : 1;
  const size = digest.body.length;
  const keyBytes = await pkcs12Kdf(hash, password, macSalt.body, iterations, 3, size);
  const key = await crypto.subtle.importKey(
    "raw",
    buffer(keyBytes),
    { name: "HMAC", hash: hash.name },
    false,
    ["verify"],
  );
  return await crypto.subtle.verify("HMAC", key, buffer(digest.body), buffer(content));
}

/** RFC 7292 appendix B.2: the PKCS12 key derivation (`id` 3 makes a MAC key). */
async function pkcs12Kdf(
  hash: { name: string; block: number },
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  id: number,
  length: number,
): Promise<Uint8Array> {
  const v = hash.block;
  const repeat = (bytes: Uint8Array) => {
    const out = new Uint8Array(v * Math.ceil(bytes.length / v));
    for (let i = 0; i < out.length; i++) out[i] = bytes[i % bytes.length];
    return out;
  };
  const I = concat(repeat(salt), repeat(password));
  const result = new Uint8Array(length);
  for (let offset = 0; offset < length;) {
    let A = concat(new Uint8Array(v).fill(id), I);
    for (let r = 0; r < iterations; r++) {
      A = new Uint8Array(await crypto.subtle.digest(hash.name, buffer(A)));
    }
    result.set(A.subarray(0, Math.min(A.length, length - offset)), offset);
    offset += A.length;
    if (offset >= length) break;
    const B = repeat(A);
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k] + B[k] + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return result;
}

/** The password as a BMPString (UTF-16BE) with its two zero bytes of terminator. */
function bmpPassword(password: string): Uint8Array {
  const out = new Uint8Array(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) {
    out[2 * i] = password.charCodeAt(i) >> 8;
    out[2 * i + 1] = password.charCodeAt(i) & 0xff;
  }
  return out;
}

/**
 * The password as OpenSSL before 1.1 made a BMPString of it: each UTF-8 byte a character.
 * Stores written then (or by tools that still do) open only with this form of a non-ASCII
 * password; for an ASCII one it is the same as {@linkcode bmpPassword}.
 */
function legacyBmpPassword(password: string): Uint8Array {
  const utf8 = new TextEncoder().encode(password);
  const out = new Uint8Array(utf8.length * 2 + 2);
  for (let i = 0; i < utf8.length; i++) out[2 * i + 1] = utf8[i];
  return out;
}

// --- a minimal DER reader: definite lengths only, as DER requires -------------------------

function read(bytes: Uint8Array): Der {
  if (bytes.length < 2) throw new Error("truncated element");
  const tag = bytes[0];
  let length = bytes[1];
  let offset = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new Error("unsupported length encoding");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[2 + i];
    offset += count;
  }
  if (offset + length > bytes.length) throw new Error("truncated element");
  return {
    tag,
    body: bytes.subarray(offset, offset + length),
    whole: bytes.subarray(0, offset + length),
  };
}

function children(element: Der): Der[] {
  const out: Der[] = [];
  for (let rest = element.body; rest.length > 0;) {
    const child = read(rest);
    out.push(child);
    rest = rest.subarray(child.whole.length);
  }
  return out;
}

function int(element: Der): number {
  return element.body.reduce((n, b) => n * 256 + b, 0);
}

function oid(element: Der): string {
  const b = element.body;
  const parts = [Math.floor(b[0] / 40), b[0] % 40];
  for (let i = 1, n = 0; i < b.length; i++) {
    n = n * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) [parts[parts.length], n] = [n, 0];
  }
  return parts.join(".");
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A copy in a fresh ArrayBuffer, as WebCrypto's typings ask. */
function buffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

function toPem(der: Uint8Array): string {
  const base64 = btoa(Array.from(der, (b) => String.fromCharCode(b)).join(""));
  return `-----BEGIN CERTIFICATE-----\n${
    base64.match(/.{1,64}/g)!.join("\n")
  }\n-----END CERTIFICATE-----\n`;
}
