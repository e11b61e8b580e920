// The words for MQTT 5 reason codes a broker sends in PUBACK, PUBREC and PUBCOMP
// (MQTT 5 §3.4.2.1, §3.5.2.1, §3.7.2.1).

const REASONS: Record<number, string> = {
  0x10: "no matching subscribers",
  0x80: "unspecified error",
  0x83: "implementation specific error",
  0x87: "not authorized",
  0x89: "server busy",
  0x90: "topic name invalid",
  0x91: "packet identifier in use",
  0x92: "packet identifier not found",
  0x93: "receive maximum exceeded",
  0x95: "packet too large",
  0x96: "message rate too high",
  0x97: "quota exceeded",
  0x99: "payload format invalid",
  0x9a: "retain not supported",
  0x9b: "QoS not supported",
};

/** The reason code's name, or "unknown reason code". */
export function reasonText(code: number): string {
  return REASONS[code] ?? "unknown reason code";
}
