/**
 * NAT at run time: picks the mapping of a new connection and writes it into the conntrack entry's
 * reply tuple (so it is replicated with the entry), rewrites every later packet from the tuples,
 * and gives outside ports back when entries are destroyed.
 *
 * As Linux orders its hooks: destination rewrites (DNAT, and undoing SNAT on replies) happen
 * before the filter, source rewrites (SNAT, undoing DNAT on replies) after it, so forward rules
 * see inside servers' addresses and inside clients' sources, as in iptables' FORWARD chain.
 *
 * Which rewrite a packet of direction d gets (Linux nf_nat_packet): a destination rewrite when
 * d = original and the entry is DST_NAT, or d = reply and SRC_NAT; a source rewrite otherwise
 * symmetric. The target is always the inverse of the other direction's tuple.
 */
import { Proto, type PacketFields } from '../packet/fields.js';
import type { PacketView } from '../packet/view.js';
import { formatAddress } from '../packet/address.js';
import {
  refreshL4Checksum,
  setDestinationAddress,
  setDestinationPort,
  setIcmpEchoId,
  setSourceAddress,
  setSourcePort,
} from '../packet/rewrite.js';
import { CtStatus, type ConntrackTable, type EntryResources } from '../conntrack/table.js';
import { TUPLE_WORDS } from '../conntrack/tuple.js';
import { PortPool } from './ports.js';
import { canRewrite4, rewrite4 } from './rewrite4.js';
import { SnatRule, type DnatRule, type NatRules } from './config.js';

const P_ICMP = Proto.ICMP;
const P_TCP = Proto.TCP;
const P_UDP = Proto.UDP;
const ST_SRC_NAT = CtStatus.SRC_NAT;
const ST_DST_NAT = CtStatus.DST_NAT;
/** Both NAT status bits: an entry without them is never rewritten. */
export const NAT_STATUS = CtStatus.SRC_NAT | CtStatus.DST_NAT;

/** Word of the ports in a tuple (see conntrack/tuple.ts). */
const TW_PORTS = 8;
/** Tries of another free port when a fresh mapping's reply tuple is taken by an entry already. */
const COLLISION_TRIES = 8;
/** At most one exhaustion log record per this many ms. */
const LOG_INTERVAL_MS = 1000;

export interface NatLogRecord {
  event: 'nat_ports_exhausted';
  /** Outside address and protocol whose range is full. */
  address: string;
  proto: number;
  /** The SNAT rule (JSON path in the ruleset). */
  rule: string;
  /** Drops since the last record (this one included). */
  drops: number;
  message: string;
}
export type NatLogSink = (record: NatLogRecord) => void;

/** Per-pool figures for metrics. */
export interface NatPoolStats {
  address: string;
  proto: number;
  portsInUse: number;
  allocations: number;
  exhausted: number;
}

export class Nat implements EntryResources {
  #rules: NatRules | null = null;
  /** Pools by outside address * 256 + protocol. */
  readonly #pools = new Map<number, PortPool>();
  readonly #log: NatLogSink | undefined;
  #lastLog = -Infinity;
  #suppressed = 0;
  readonly #words = new Uint32Array(4);
  readonly #probe = new Uint32Array(TUPLE_WORDS);
  /** Connections given a mapping, by kind. */
  snatConnections = 0;
  dnatConnections = 0;
  /** New connections dropped because their SNAT range was full. */
  exhaustedDrops = 0;
  /** Replicated entries whose outside port another inside endpoint already held here. */
  adoptConflicts = 0;
  /** The rule followMasterSource maps with (its address set per call). */
  readonly #followRule = Object.assign(new SnatRule(), { path: 'helper (the master connection\'s SNAT)' });

  constructor(log?: NatLogSink) {
    this.#log = log;
  }

  /** Swap the rules (a reload). Mappings of live entries and the pools stay. */
  setRules(rules: NatRules | null): void {
    this.#rules = rules;
  }

  get hasRules(): boolean {
    return this.#rules !== null && (this.#rules.snat.length > 0 || this.#rules.dnat.length > 0);
  }

  /** The pool of an outside address and protocol, created on first use (config-rate). */
  pool(address: number, proto: number): PortPool {
    const key = (address >>> 0) * 256 + proto;
    let p = this.#pools.get(key);
    if (p === undefined) {
      p = new PortPool(address, proto);
      this.#pools.set(key, p);
    }
    return p;
  }

  /**
   * First packet of a pending entry, before the filter: the first matching DNAT rule sets the
   * reply tuple's source to the inside server. Returns true when it applied.
   */
  newDestination(t: ConntrackTable, slot: number, pkt: PacketFields, inIf: number, now: number): boolean {
    const rules = this.#rules;
    if (rules === null || pkt.family !== 4) return false;
    const list = rules.dnat;
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (!matches(r, rules, pkt, inIf, now) || !dportMatches(r, pkt)) continue;
      const o = t.tupleOffset(slot, 1);
      const w = t.tuples;
      w[o] = r.to;
      if (r.toPort >= 0) w[o + TW_PORTS] = ((r.toPort << 16) | (w[o + TW_PORTS] & 0xffff)) >>> 0;
      t.addStatus(slot, ST_DST_NAT);
      this.dnatConnections++;
      return true;
    }
    return false;
  }

  /**
   * First packet of a pending entry, after the filter accepted it: the first matching SNAT rule
   * maps the source to its outside address and a port. Returns false when the rule's port range
   * is exhausted (the caller drops the packet); true otherwise, mapped or not.
   */
  newSource(t: ConntrackTable, slot: number, pkt: PacketFields, outIf: number, now: number): boolean {
    const rules = this.#rules;
    if (rules === null || pkt.family !== 4) return true;
    const list = rules.snat;
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (!matches(r, rules, pkt, outIf, now)) continue;
      return this.#mapSource(t, slot, r, now);
    }
    return true;
  }

  /**
   * A helper's expected connection (FTP data) whose master is NATed takes its NAT from the master,
   * not from the rules (Linux's nf_nat_follow_master), before the filter: its destination becomes
   * the master's tuple (expDir ^ 1) source, at `savedPort` (the port the payload announced before
   * the helper rewrote it) when given. Returns true when it applied.
   */
  followMasterDestination(t: ConntrackTable, slot: number, master: number, expDir: number, savedPort: number): boolean {
    const w = t.tuples;
    const oo = t.tupleOffset(slot, 0);
    if (w[oo + 9] >>> 8 !== 4) return false;
    const x = t.tupleOffset(master, expDir ^ 1);
    const ro = t.tupleOffset(slot, 1);
    const addr = w[x];
    const port = savedPort >= 0 ? savedPort : w[oo + TW_PORTS] & 0xffff;
    if (w[oo + 4] === addr && (w[oo + TW_PORTS] & 0xffff) === port) return false;
    w[ro] = addr;
    w[ro + TW_PORTS] = ((port << 16) | (w[ro + TW_PORTS] & 0xffff)) >>> 0;
    t.addStatus(slot, ST_DST_NAT);
    this.dnatConnections++;
    return true;
  }

  /**
   * The source half of followMasterDestination, after the filter: the source becomes the
   * master's tuple (expDir ^ 1) destination (the address its SNAT maps to), with a port from that
   * address's pool. Returns false when the pool is exhausted (the caller drops the packet).
   */
  followMasterSource(t: ConntrackTable, slot: number, master: number, expDir: number, now: number): boolean {
    const w = t.tuples;
    const oo = t.tupleOffset(slot, 0);
    if (w[oo + 9] >>> 8 !== 4) return true;
    const to = w[t.tupleOffset(master, expDir ^ 1) + 4];
    if (w[oo] === to) return true;
    this.#followRule.to = to;
    return this.#mapSource(t, slot, this.#followRule, now);
  }

  #mapSource(t: ConntrackTable, slot: number, r: SnatRule, now: number): boolean {
    const w = t.tuples;
    const oo = t.tupleOffset(slot, 0);
    const ro = t.tupleOffset(slot, 1);
    const proto = w[oo + 9] & 0xff;
    const probe = this.#probe;
    if (proto !== P_TCP && proto !== P_UDP && proto !== P_ICMP) {
      // Address only (GRE, ESP...): refuse when another inside host already owns this reply tuple.
      probe.set(w.subarray(ro, ro + TUPLE_WORDS));
      probe[4] = r.to;
      if (t.lookup(probe, 0) >= 0) return this.#exhausted(this.pool(r.to, proto), r, now);
      w[ro + 4] = r.to;
      t.addStatus(slot, ST_SRC_NAT);
      this.snatConnections++;
      return true;
    }
    const pool = this.pool(r.to, proto);
    const icmp = proto === P_ICMP;
    // The inside endpoint: source port of TCP/UDP (low half of the reply's ports word = its dport),
    // or the echo identifier (high half of ICMP's ports word, the same in both tuples).
    const replyPorts = w[ro + TW_PORTS];
    const insidePort = icmp ? replyPorts >>> 16 : replyPorts & 0xffff;
    const key = PortPool.key(w[oo], insidePort);
    let port = pool.mapped(key);
    if (port >= 0) {
      pool.ref(port);
    } else {
      const lo = icmp ? 0 : r.portLo;
      const hi = icmp ? 65535 : r.portHi;
      let want = insidePort;
      for (let tries = 0; ; tries++) {
        port = pool.findFree(want, lo, hi);
        if (port < 0 || tries >= COLLISION_TRIES) return this.#exhausted(pool, r, now);
        probe.set(w.subarray(ro, ro + TUPLE_WORDS));
        probe[4] = r.to;
        probe[TW_PORTS] = icmp ? ((port << 16) | (replyPorts & 0xffff)) >>> 0 : ((replyPorts & 0xffff0000) | port) >>> 0;
        if (t.lookup(probe, 0) < 0) break;
        want = port >= hi ? lo : port + 1;
      }
      pool.claim(key, port);
    }
    w[ro + 4] = r.to;
    w[ro + TW_PORTS] = icmp ? ((port << 16) | (replyPorts & 0xffff)) >>> 0 : ((replyPorts & 0xffff0000) | port) >>> 0;
    t.addStatus(slot, ST_SRC_NAT);
    this.snatConnections++;
    return true;
  }

  #exhausted(pool: PortPool, r: SnatRule, now: number): boolean {
    pool.exhausted++;
    this.exhaustedDrops++;
    this.#suppressed++;
    const log = this.#log;
    if (log !== undefined && now - this.#lastLog >= LOG_INTERVAL_MS) {
      this.#lastLog = now;
      const drops = this.#suppressed;
      this.#suppressed = 0;
      const address = formatAddress(4, [pool.address, 0, 0, 0]);
      log({
        event: 'nat_ports_exhausted',
        address,
        proto: pool.proto,
        rule: r.path,
        drops,
        message:
          `NAT ports exhausted on ${address} protocol ${pool.proto} (${drops} new connections dropped): ` +
          `widen the rule's port range, add an outside address or shorten the timeouts`,
      });
    }
    return false;
  }

  /**
   * Before the filter: the destination rewrite of a packet of a NAT entry (and, for an ICMP error
   * about the flow, the rewrite of its quoted packet). Returns true when bytes changed.
   */
  rewriteDestination(pkt: PacketView, t: ConntrackTable, slot: number, dir: number): boolean {
    const st = t.statusOf(slot);
    if ((st & NAT_STATUS) === 0) return false;
    const w = t.tuples;
    const o = t.tupleOffset(slot, 1 - dir);
    const applies = (st & (dir === 0 ? ST_DST_NAT : ST_SRC_NAT)) !== 0;
    if (pkt.isIcmpError) {
      // The quote travelled the other way: make it what the other side sent, tuple (1 - dir).
      const inner = pkt.inner;
      const words = this.#words;
      words[0] = w[o];
      setSourceAddress(inner, words);
      words[0] = w[o + 4];
      setDestinationAddress(inner, words);
      const ports = w[o + TW_PORTS];
      if (inner.proto === P_TCP || inner.proto === P_UDP) {
        setSourcePort(inner, ports >>> 16);
        setDestinationPort(inner, ports & 0xffff);
      } else if (inner.icmpHasId) {
        setIcmpEchoId(inner, ports >>> 16);
      }
      if (applies) {
        words[0] = w[o];
        setDestinationAddress(pkt, words);
      }
      refreshL4Checksum(pkt);
      return true;
    }
    if (!applies) return false;
    if (canRewrite4(pkt)) {
      rewrite4(pkt, 1, w[o], w[o + TW_PORTS] >>> 16);
      return true;
    }
    const words = this.#words;
    words[0] = w[o];
    setDestinationAddress(pkt, words);
    const proto = pkt.proto;
    if (proto === P_TCP || proto === P_UDP) setDestinationPort(pkt, w[o + TW_PORTS] >>> 16);
    else if (pkt.icmpHasId) setIcmpEchoId(pkt, w[o + TW_PORTS] >>> 16);
    return true;
  }

  /**
   * Undo rewriteDestination on a packet the filter refused with a REJECT, so the answer is built
   * from the packet as it arrived (its destination is tuple(dir)'s). ICMP errors are left alone:
   * nothing answers them.
   */
  restoreDestination(pkt: PacketView, t: ConntrackTable, slot: number, dir: number): void {
    if (pkt.isIcmpError) return;
    const w = t.tuples;
    const o = t.tupleOffset(slot, dir);
    const words = this.#words;
    words[0] = w[o + 4];
    setDestinationAddress(pkt, words);
    const proto = pkt.proto;
    if (proto === P_TCP || proto === P_UDP) setDestinationPort(pkt, w[o + TW_PORTS] & 0xffff);
    else if (pkt.icmpHasId) setIcmpEchoId(pkt, w[o + TW_PORTS] >>> 16);
  }

  /** After the filter: the source rewrite. Returns true when bytes changed. */
  rewriteSource(pkt: PacketView, t: ConntrackTable, slot: number, dir: number): boolean {
    const st = t.statusOf(slot);
    if ((st & (dir === 0 ? ST_SRC_NAT : ST_DST_NAT)) === 0) return false;
    const w = t.tuples;
    const o = t.tupleOffset(slot, 1 - dir);
    if (canRewrite4(pkt)) {
      rewrite4(pkt, 0, w[o + 4], w[o + TW_PORTS] & 0xffff);
      return true;
    }
    const words = this.#words;
    words[0] = w[o + 4];
    setSourceAddress(pkt, words);
    if (pkt.isIcmpError) return true;
    const proto = pkt.proto;
    if (proto === P_TCP || proto === P_UDP) setSourcePort(pkt, w[o + TW_PORTS] & 0xffff);
    else if (pkt.icmpHasId) setIcmpEchoId(pkt, w[o + TW_PORTS] >>> 16);
    return true;
  }

  /** An entry is being destroyed: its connection no longer holds its outside port. */
  release(t: ConntrackTable, slot: number): void {
    if ((t.statusOf(slot) & ST_SRC_NAT) === 0) return;
    const p = this.#entryPort(t, slot);
    if (p < 0) return;
    const pool = this.#poolOf(t, slot);
    // Only a port this entry's inside endpoint holds: an entry never counted here (replicated
    // before NAT was configured) must not free a port another endpoint took since.
    const oo = t.tupleOffset(slot, 0);
    if (pool !== undefined && pool.ownerOf(p) === PortPool.key(t.tuples[oo], t.tuples[oo + TW_PORTS] >>> 16)) pool.release(p);
  }

  /**
   * An entry arrived whole (sync, restore): count its outside port as used here too, so a
   * takeover never hands it to another inside endpoint.
   */
  adopt(t: ConntrackTable, slot: number): void {
    if ((t.statusOf(slot) & ST_SRC_NAT) === 0) return;
    const port = this.#entryPort(t, slot);
    if (port < 0) return;
    const w = t.tuples;
    const ro = t.tupleOffset(slot, 1);
    const pool = this.pool(w[ro + 4], w[ro + 9] & 0xff);
    const oo = t.tupleOffset(slot, 0);
    // The inside endpoint: the original source port, or the echo id (both the high half).
    const key = PortPool.key(w[oo], w[oo + TW_PORTS] >>> 16);
    if (pool.isFree(port)) pool.claim(key, port);
    else {
      if (pool.ownerOf(port) !== key) this.adoptConflicts++;
      pool.ref(port);
    }
  }

  /** Figures per pool, for metrics (allocates: scrape-rate). */
  poolStats(): NatPoolStats[] {
    return [...this.#pools.values()].map((p) => ({
      address: formatAddress(4, [p.address, 0, 0, 0]),
      proto: p.proto,
      portsInUse: p.inUse,
      allocations: p.allocations,
      exhausted: p.exhausted,
    }));
  }

  /** The outside port an SNAT entry holds (TCP/UDP port or ICMP id), -1 when it holds none. */
  #entryPort(t: ConntrackTable, slot: number): number {
    const w = t.tuples;
    const ro = t.tupleOffset(slot, 1);
    const proto = w[ro + 9] & 0xff;
    if (proto === P_TCP || proto === P_UDP) return w[ro + TW_PORTS] & 0xffff;
    if (proto === P_ICMP) return w[ro + TW_PORTS] >>> 16;
    return -1;
  }

  #poolOf(t: ConntrackTable, slot: number): PortPool | undefined {
    const w = t.tuples;
    const ro = t.tupleOffset(slot, 1);
    if (w[ro + 9] >>> 8 !== 4) return undefined;
    return this.#pools.get((w[ro + 4] >>> 0) * 256 + (w[ro + 9] & 0xff));
  }
}

function inCidrs(list: Uint32Array, addr: number): boolean {
  for (let i = 0; i < list.length; i += 2) if (((addr & list[i + 1]) >>> 0) === list[i]) return true;
  return false;
}

function matches(r: SnatRule | DnatRule, rules: NatRules, pkt: PacketFields, ifindex: number, now: number): boolean {
  if (r.protos !== null && r.protos[pkt.proto] !== 1) return false;
  if (r.src !== null && !inCidrs(r.src, pkt.src[0])) return false;
  if (r.dst !== null && !inCidrs(r.dst, pkt.dst[0])) return false;
  if (r.iface >= 0 && !rules.ifaces.matches(ifindex, r.iface, now)) return false;
  return true;
}

function dportMatches(r: DnatRule, pkt: PacketFields): boolean {
  const d = r.dports;
  if (d === null) return true;
  if (pkt.proto !== P_TCP && pkt.proto !== P_UDP) return false;
  const p = pkt.dport;
  for (let i = 0; i < d.length; i += 2) if (p >= d[i] && p <= d[i + 1]) return true;
  return false;
}
