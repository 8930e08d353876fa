/**
 * What the filter tells the engine: verdict codes, reject kinds, and the preallocated result object
 * that each evaluation fills (the engine keeps one and passes it every time: nothing is allocated).
 */

/** Final verdict. Numbered as the kernel's NF_DROP (0) and NF_ACCEPT (1); REJECT drops and answers. */
export const Verdict = {
  DROP: 0,
  ACCEPT: 1,
  /** Drop, and send the answer given by FilterResult.rejectKind (REJECT target). */
  REJECT: 2,
} as const;
export type VerdictCode = (typeof Verdict)[keyof typeof Verdict];
export const verdictNames = ['DROP', 'ACCEPT', 'REJECT'] as const;

/**
 * The answer a REJECT sends, family-neutral: the engine picks the ICMP (RFC 792) or ICMPv6
 * (RFC 4443) type/code for the packet's family, as ipt_REJECT / ip6t_REJECT do.
 */
export const RejectKind = {
  NONE: 0,
  /** TCP RST (only for TCP rules, as ipt_REJECT refuses tcp-reset otherwise). */
  TCP_RESET: 1,
  /** ICMP 3/3, ICMPv6 1/4. iptables' default. */
  PORT_UNREACHABLE: 2,
  /** ICMP 3/1, ICMPv6 1/3 (address unreachable). */
  HOST_UNREACHABLE: 3,
  /** ICMP 3/0, ICMPv6 1/0 (no route). */
  NET_UNREACHABLE: 4,
  /** ICMP 3/2; ICMPv6 has no equivalent, sends 1/4. */
  PROTO_UNREACHABLE: 5,
  /** ICMP 3/9; ICMPv6 1/1. */
  NET_PROHIBITED: 6,
  /** ICMP 3/10; ICMPv6 1/1. */
  HOST_PROHIBITED: 7,
  /** ICMP 3/13; ICMPv6 1/1 (administratively prohibited). */
  ADMIN_PROHIBITED: 8,
} as const;
export type RejectKindCode = (typeof RejectKind)[keyof typeof RejectKind];

/** `--reject-with` names (both the iptables and the ip6tables spellings) to kinds. */
export const rejectKindByName: Readonly<Record<string, RejectKindCode>> = {
  'tcp-reset': RejectKind.TCP_RESET,
  'icmp-port-unreachable': RejectKind.PORT_UNREACHABLE,
  'icmp6-port-unreachable': RejectKind.PORT_UNREACHABLE,
  'port-unreach': RejectKind.PORT_UNREACHABLE,
  'icmp-host-unreachable': RejectKind.HOST_UNREACHABLE,
  'icmp6-addr-unreachable': RejectKind.HOST_UNREACHABLE,
  'icmp-net-unreachable': RejectKind.NET_UNREACHABLE,
  'icmp6-no-route': RejectKind.NET_UNREACHABLE,
  'icmp-proto-unreachable': RejectKind.PROTO_UNREACHABLE,
  'icmp-net-prohibited': RejectKind.NET_PROHIBITED,
  'icmp-host-prohibited': RejectKind.HOST_PROHIBITED,
  'icmp-admin-prohibited': RejectKind.ADMIN_PROHIBITED,
  'icmp6-adm-prohibited': RejectKind.ADMIN_PROHIBITED,
};

/** Per-packet metadata from the data plane. */
export interface PacketMeta {
  /** Kernel ifindex of the input interface (0 = none). */
  inIf: number;
  /** Kernel ifindex of the output interface (0 = not known yet, as in PREROUTING). */
  outIf: number;
  /** Packet mark (skb->mark) on entry. */
  mark: number;
  /** Milliseconds since the epoch, from the engine's injected clock. */
  now: number;
}

/** What conntrack found for the packet. */
export interface CtInfo {
  /** A CtState code. */
  state: number;
  /** The entry's connmark (0 for a new entry). */
  connmark: number;
}

/** Filled by each evaluation; allocate one with `new FilterResult()` and reuse it. */
export class FilterResult {
  /** A Verdict code. */
  verdict: number = Verdict.ACCEPT;
  /** A RejectKind code when verdict is REJECT, else NONE. */
  rejectKind: number = RejectKind.NONE;
  /** Packet mark after MARK / CONNMARK restore targets. */
  mark = 0;
  markChanged = false;
  /** Connmark after CONNMARK set / save targets (forward only). */
  connmark = 0;
  connmarkChanged = false;
  /** A NOTRACK rule matched in the raw chain: do not track this packet. */
  notrack = false;
  /** A HELPER rule matched in the raw chain: the helper (HelperId) a new entry gets; 0 none. */
  helper = 0;
  /** Index of the chain that decided (see CompiledRuleset.chainNames). */
  chain = 0;
  /** Index within that chain of the rule that decided, or -1 when the chain's policy did. */
  rule = -1;
}
