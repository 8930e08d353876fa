/**
 * The shape of a ruleset document, as @sinclair/typebox schemas. Shape only: values that need
 * parsing (addresses, ports, rates, names that must exist) are checked by check.ts, which reports
 * its findings in the same {path, message} form. README.md documents the format with an example.
 */
import { Type, type Static } from '@sinclair/typebox';

const Strings = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]);
const PortItem = Type.Union([Type.Integer(), Type.String()]);
const Ports = Type.Union([Type.Integer(), Type.String(), Type.Array(PortItem, { minItems: 1 })]);
const MarkValue = Type.Union([Type.Integer(), Type.String()]);
const Closed = { additionalProperties: false } as const;

/** Matches that iptables lets you negate with `!`; under `not:` each is negated on its own. */
const negatable = {
  /** Conntrack state list, as `-m conntrack --ctstate`. */
  ctstate: Type.Optional(Strings),
  /** Input / output interface names, `eth+` for a prefix, as -i / -o. */
  in: Type.Optional(Strings),
  out: Type.Optional(Strings),
  /** CIDR, address, list of those, or "@set" (an ip or net set), as -s / -d. */
  src: Type.Optional(Strings),
  dst: Type.Optional(Strings),
  proto: Type.Optional(Type.Union([Type.String(), Type.Integer()])),
  sport: Type.Optional(Ports),
  dport: Type.Optional(Ports),
  /** "SYN,RST,ACK,FIN SYN", as --tcp-flags. */
  tcpFlags: Type.Optional(Type.String()),
  /** As --syn. */
  syn: Type.Optional(Type.Boolean()),
  /** Name, number or "type/code", as --icmp-type / --icmpv6-type. */
  icmpType: Type.Optional(Type.Union([Type.String(), Type.Integer()])),
  /** "value/mask", as -m mark --mark. */
  mark: Type.Optional(MarkValue),
  /** "value/mask", as -m connmark --mark. */
  connmark: Type.Optional(MarkValue),
  /** As -m set --match-set NAME src,dst. */
  set: Type.Optional(
    Type.Object(
      {
        name: Type.String(),
        flags: Type.Array(Type.Union([Type.Literal('src'), Type.Literal('dst')]), { minItems: 1, maxItems: 2 }),
      },
      Closed,
    ),
  ),
  /** As -m statistic. */
  statistic: Type.Optional(
    Type.Object(
      {
        mode: Type.Union([Type.Literal('nth'), Type.Literal('random')]),
        every: Type.Optional(Type.Integer({ minimum: 1 })),
        packet: Type.Optional(Type.Integer({ minimum: 0 })),
        probability: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      },
      Closed,
    ),
  ),
  /** As -m time (UTC). */
  time: Type.Optional(
    Type.Object(
      {
        start: Type.Optional(Type.String()),
        stop: Type.Optional(Type.String()),
        days: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Integer()]), { minItems: 1 })),
      },
      Closed,
    ),
  ),
  /** IP total length or range, as -m length --length. */
  length: Type.Optional(Type.Union([Type.Integer(), Type.String()])),
};

export const NegatedMatchSchema = Type.Object(negatable, Closed);

export const MatchSchema = Type.Object(
  {
    ...negatable,
    /** As -m limit: matches while under the rate. */
    limit: Type.Optional(
      Type.Object({ rate: Type.String(), burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })) }, Closed),
    ),
    /** As -m hashlimit --hashlimit-mode srcip: one bucket per source prefix, in a bounded table. */
    hashlimit: Type.Optional(
      Type.Object(
        {
          rate: Type.String(),
          burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          /** Match when over the rate (--hashlimit-above) instead of under it (--hashlimit-upto). */
          above: Type.Optional(Type.Boolean()),
          srcPrefix: Type.Optional(Type.Integer({ minimum: 0, maximum: 32 })),
          srcPrefix6: Type.Optional(Type.Integer({ minimum: 0, maximum: 128 })),
          /** Most sources tracked at once (--hashlimit-htable-max); the stalest is evicted. */
          size: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_048_576 })),
          /** Idle time after which a source's bucket is forgotten (--hashlimit-htable-expire). */
          expireMs: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        Closed,
      ),
    ),
    /** As -m connlimit: connections from the packet's source prefix, above or up to N. */
    connlimit: Type.Optional(
      Type.Object(
        {
          above: Type.Optional(Type.Integer({ minimum: 0 })),
          upto: Type.Optional(Type.Integer({ minimum: 0 })),
          srcPrefix: Type.Optional(Type.Integer({ minimum: 0, maximum: 32 })),
          srcPrefix6: Type.Optional(Type.Integer({ minimum: 0, maximum: 128 })),
        },
        Closed,
      ),
    ),
    not: Type.Optional(NegatedMatchSchema),
  },
  Closed,
);

const LogLevel = Type.Union(
  ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'].map((l) => Type.Literal(l)),
);

export const TargetSchema = Type.Union([
  Type.Union(['ACCEPT', 'DROP', 'REJECT', 'NOTRACK', 'RETURN'].map((t) => Type.Literal(t))),
  Type.Object({ reject: Type.String() }, Closed),
  Type.Object(
    {
      log: Type.Object(
        {
          // iptables' LOG refuses prefixes over 29 characters.
          prefix: Type.Optional(Type.String({ maxLength: 29 })),
          level: Type.Optional(LogLevel),
          rate: Type.Optional(Type.String()),
          burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        Closed,
      ),
    },
    Closed,
  ),
  Type.Object(
    {
      mark: Type.Object(
        {
          set: Type.Optional(MarkValue),
          or: Type.Optional(MarkValue),
          and: Type.Optional(MarkValue),
          xor: Type.Optional(MarkValue),
        },
        { ...Closed, minProperties: 1, maxProperties: 1 },
      ),
    },
    Closed,
  ),
  Type.Object(
    {
      connmark: Type.Object(
        {
          set: Type.Optional(MarkValue),
          /** true, or the mask of bits to copy (--save-mark --mask). */
          save: Type.Optional(Type.Union([Type.Literal(true), MarkValue])),
          restore: Type.Optional(Type.Union([Type.Literal(true), MarkValue])),
        },
        { ...Closed, minProperties: 1, maxProperties: 1 },
      ),
    },
    Closed,
  ),
  Type.Object({ jump: Type.String() }, Closed),
  /** Attach a connection helper to new entries (iptables' -j CT --helper NAME): raw chain only. */
  Type.Object({ helper: Type.String() }, Closed),
]);

export const RuleSchema = Type.Object(
  {
    comment: Type.Optional(Type.String({ maxLength: 256 })),
    match: Type.Optional(MatchSchema),
    target: TargetSchema,
  },
  Closed,
);

export const ChainSchema = Type.Object(
  {
    /** Base chains only (raw, forward): the verdict when no rule decides. */
    policy: Type.Optional(Type.Union(['accept', 'drop', 'ACCEPT', 'DROP'].map((p) => Type.Literal(p)))),
    rules: Type.Optional(Type.Array(RuleSchema)),
  },
  Closed,
);

export const SetSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('ip'), Type.Literal('net'), Type.Literal('ip+port')]),
    elements: Type.Array(Type.String()),
    comment: Type.Optional(Type.String()),
  },
  Closed,
);

export const RulesetSchema = Type.Object(
  {
    sets: Type.Optional(Type.Record(Type.String(), SetSchema)),
    chains: Type.Record(Type.String(), ChainSchema),
    /** NAT rules: shape and values are checked by src/node/nat (compileNat), paths under /nat. */
    nat: Type.Optional(Type.Unknown()),
  },
  Closed,
);

export type MatchDoc = Static<typeof MatchSchema>;
export type NegatedMatchDoc = Static<typeof NegatedMatchSchema>;
export type TargetDoc = Static<typeof TargetSchema>;
export type RuleDoc = Static<typeof RuleSchema>;
export type ChainDoc = Static<typeof ChainSchema>;
export type SetDoc = Static<typeof SetSchema>;
export type RulesetDoc = Static<typeof RulesetSchema>;
