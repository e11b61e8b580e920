// Limits in bytes, both ways. MQTT frames every packet with its length up front (MQTT 5
// §2.1.4, a variable byte integer of at most 268,435,455), so a packet that is too large
// can be refused from its first few bytes, before its body is buffered; and the size of a
// PUBLISH can be known before it is sent.
// This module is browser compatible.
import type { MqttPublishProperties } from "../record.ts";
import { MQTT_MAX_PACKET_SIZE } from "../options/_schema.ts";

/**
 * The largest packet MQTT can frame, in bytes: 268,435,460. MQTT_MAX_PACKET_SIZE (the
 * maxPacketSize option's upper bound) is the largest Remaining Length, a variable byte
 * integer of at most four bytes (MQTT 5 §1.5.5 and §2.1.4, 3.1.1 §2.2.3); the whole packet,
 * which is what a Maximum Packet Size counts (MQTT 5 §3.1.2.11.4, §3.2.2.3.6), adds the
 * fixed header's first byte and those four length bytes.
 */
export const MQTT_LARGEST_PACKET = MQTT_MAX_PACKET_SIZE + 1 + 4;

const encoder = new TextEncoder();

/** Bytes of a variable byte integer (MQTT 5 §1.5.5). */
function varIntSize(value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
}

/** Bytes of `text` as UTF-8. */
function utf8Size(text: string): number {
  // Cheap for ASCII, which most topics are; exact for the rest.
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text.length : encoder.encode(text).length;
}

/** A packet's size on the wire: fixed header, Remaining Length and the rest. */
export function frameSize(remainingLength: number): number {
  return 1 + varIntSize(remainingLength) + remainingLength;
}

/** The bytes of a PUBLISH's MQTT 5 properties, their length prefix included. */
function propertiesSize(properties: MqttPublishProperties | undefined): number {
  let size = 0;
  if (properties) {
    const string = (text: string) => 1 + 2 + utf8Size(text);
    if (properties.payloadFormatIndicator !== undefined) size += 2;
    if (properties.messageExpiryInterval !== undefined) size += 5;
    if (properties.contentType !== undefined) size += string(properties.contentType);
    if (properties.responseTopic !== undefined) size += string(properties.responseTopic);
    if (properties.correlationData !== undefined) {
      size += 3 + properties.correlationData.length;
    }
    for (const [name, value] of Object.entries(properties.userProperties ?? {})) {
      for (const item of Array.isArray(value) ? value : [value]) {
        size += 1 + 2 + utf8Size(name) + 2 + utf8Size(item);
      }
    }
  }
  return varIntSize(size) + size;
}

/** What {@linkcode publishSize} needs of a publish. */
export interface Sized {
  topic: string;
  payload: Uint8Array | string;
  qos: 0 | 1 | 2;
  properties?: MqttPublishProperties;
}

/**
 * The size on the wire of the PUBLISH packet for `publish` (MQTT 5 §3.3), with the
 * properties section when `mqttVersion` is 5. A string payload is sent as UTF-8.
 */
export function publishSize(publish: Sized, mqttVersion: number): number {
  const payload = typeof publish.payload === "string"
    ? utf8Size(publish.payload)
    : publish.payload.length;
  const remaining = 2 + utf8Size(publish.topic) + (publish.qos > 0 ? 2 : 0) +
    (mqttVersion === 5 ? propertiesSize(publish.properties) : 0) + payload;
  return frameSize(remaining);
}

/** MQTT control packet names by type (MQTT 5 §2.1.2), for messages. */
const PACKET_NAMES = [
  "reserved",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
];

/** An incoming packet over the limit, known from its header, or one whose header is malformed. */
export interface Oversized {
  /** The packet type, e.g. "PUBLISH". */
  packet: string;
  /** Its declared size on the wire, in bytes (0 when malformed). */
  size: number;
  /**
   * Its Remaining Length runs to more than four bytes (MQTT 5 §1.5.5, 3.1.1 §2.2.3): no size
   * can be known, and no limit would let it through.
   */
  malformed?: true;
  /** Where it starts in the chunk scanned (0 when it began in an earlier one). */
  offset: number;
}

/**
 * Follows the framing of an incoming byte stream without buffering it: it reads each
 * packet's fixed header and Remaining Length and skips its body, so a packet over `limit`
 * is found from its first bytes, whatever size it declares.
 */
export class FrameScanner {
  readonly #limit: number;
  /** Body bytes of the current packet not yet seen. */
  #skip = 0;
  /** The first byte of the packet whose length is being read, or -1 between packets. */
  #type = -1;
  /** Where the packet whose length is being read starts in the current chunk. */
  #start = 0;
  #length = 0;
  #lengthBytes = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Scans the next chunk; returns the first packet over the limit, if it starts here. */
  scan(chunk: Uint8Array): Oversized | undefined {
    let i = 0;
    this.#start = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++];
      if (this.#type === -1) {
        this.#start = i - 1;
        this.#type = byte;
        this.#length = 0;
        this.#lengthBytes = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * 128 ** this.#lengthBytes++;
      if (byte & 0x80 && this.#lengthBytes < 4) continue;
      const size = 1 + this.#lengthBytes + this.#length;
      const type = this.#type >> 4;
      this.#type = -1;
      // A continuation bit on the fourth byte announces a fifth: malformed, whatever the limit.
      if (byte & 0x80) {
        return { packet: PACKET_NAMES[type], size: 0, offset: this.#start, malformed: true };
      }
      if (size > this.#limit) return { packet: PACKET_NAMES[type], size, offset: this.#start };
      this.#skip = this.#length;
    }
    return undefined;
  }
}

/** The part of a Node-style stream that {@linkcode guardIncoming} wraps; a transport may lack it. */
export interface Pipeable {
  pipe?(destination: PipeTarget, options?: unknown): unknown;
}

/** The writable mqtt.js pipes its transport into, which feeds its packet parser. */
export interface PipeTarget {
  _write(chunk: Uint8Array, encoding: string, done: (error?: Error | null) => void): void;
}

/**
 * Makes `stream` refuse a packet over `limit` before its body reaches mqtt.js: mqtt.js
 * pipes the transport into a writable that feeds its packet parser, which would buffer a
 * whole packet of any declared size (up to 256 MB) before looking at it. The chunk that
 * oversized packet and everything after it are dropped, and `refuse` is called once, at
 * once: it must close the connection.
 */
export function guardIncoming(
  stream: Pipeable,
  limit: number,
  refuse: (oversized: Oversized) => void,
): void {
  const pipe = stream.pipe;
  if (typeof pipe !== "function") return;
  stream.pipe = function (destination: PipeTarget, options?: unknown) {
    const scanner = new FrameScanner(limit);
    const write = destination._write;
    let refused = false;
    destination._write = (chunk, encoding, done) => {
      if (refused) return done();
      const oversized = scanner.scan(chunk);
      if (!oversized) return write.call(destination, chunk, encoding, done);
      refused = true;
      refuse(oversized);
      const before = chunk.subarray(0, oversized.offset);
      if (before.length) write.call(destination, before, encoding, done);
      else done();
    };
    return pipe.call(this, destination, options);
  };
}
