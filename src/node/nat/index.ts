/**
 * NAT: the public surface of src/node/nat (README.md documents the `nat:` ruleset section).
 *
 * - schema.ts / config.ts: the `nat:` section of a ruleset, validated with JSON paths, compiled
 *   into NatRules (SNAT / masquerade to an address, DNAT port forwards).
 * - ports.ts: PortPool, outside ports of one address and protocol (bitmap, endpoint-independent
 *   mapping, connection counts per port).
 * - nat.ts: Nat, mappings of new connections into the conntrack entry's reply tuple, rewrites of
 *   later packets (and of ICMP errors' quotes) from the tuples, counters.
 * - nat.ts is the table's EntryResources: ports come back when entries are destroyed and are
 *   adopted when entries arrive whole (restore, sync).
 *
 * Errors: a bad section is reported in the ruleset's RulesetError (code RULESET_INVALID) with
 * paths like `/nat/snat/0/to`. The per-packet path never throws: an exhausted port range drops
 * the new connection (DropReason NAT_EXHAUSTED) and logs at most once a second.
 */
export { compileNat, NatRules, SnatRule, DnatRule, DEFAULT_PORT_LO, DEFAULT_PORT_HI } from './config.js';
export { NatSchema } from './schema.js';
export type { NatDoc, SnatRuleDoc, DnatRuleDoc } from './schema.js';
export { Nat, NAT_STATUS } from './nat.js';
export type { NatLogRecord, NatLogSink, NatPoolStats } from './nat.js';
export { PortPool } from './ports.js';
