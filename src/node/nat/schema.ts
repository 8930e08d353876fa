/**
 * Shape of a ruleset's `nat:` section (@sinclair/typebox). Values that need parsing (addresses,
 * ports, interface names) are checked by config.ts; README.md documents the format.
 */
import { Type, type Static } from '@sinclair/typebox';

const Strings = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]);
const Protos = Type.Union([Type.String(), Type.Integer(), Type.Array(Type.Union([Type.String(), Type.Integer()]), { minItems: 1 })]);
const PortItem = Type.Union([Type.Integer(), Type.String()]);
const Ports = Type.Union([Type.Integer(), Type.String(), Type.Array(PortItem, { minItems: 1 })]);
const Closed = { additionalProperties: false } as const;

export const SnatRuleSchema = Type.Object(
  {
    comment: Type.Optional(Type.String({ maxLength: 256 })),
    /** Output interface names (`eth+` for a prefix), as -o. */
    out: Type.Optional(Strings),
    /** Source / destination CIDRs (IPv4), as -s / -d. */
    src: Type.Optional(Strings),
    dst: Type.Optional(Strings),
    /** tcp, udp, icmp or a number; default every protocol. */
    proto: Type.Optional(Protos),
    /** The outside address (in a pair: the outside virtual address). */
    to: Type.String(),
    /** Outside port range for TCP/UDP, "1024-65535" by default. */
    ports: Type.Optional(Type.Union([Type.Integer(), Type.String()])),
  },
  Closed,
);

export const DnatRuleSchema = Type.Object(
  {
    comment: Type.Optional(Type.String({ maxLength: 256 })),
    /** Input interface names, as -i. */
    in: Type.Optional(Strings),
    src: Type.Optional(Strings),
    dst: Type.Optional(Strings),
    proto: Type.Optional(Protos),
    /** Destination ports (needs proto tcp or udp), as --dport. */
    dport: Type.Optional(Ports),
    /** Inside server: "10.0.0.5" or "10.0.0.5:8080". */
    to: Type.String(),
  },
  Closed,
);

export const NatSchema = Type.Object(
  {
    snat: Type.Optional(Type.Array(SnatRuleSchema)),
    dnat: Type.Optional(Type.Array(DnatRuleSchema)),
  },
  Closed,
);

export type SnatRuleDoc = Static<typeof SnatRuleSchema>;
export type DnatRuleDoc = Static<typeof DnatRuleSchema>;
export type NatDoc = Static<typeof NatSchema>;
