/**
 * The kernel rules that feed the queue, in the raw table (before kernel conntrack, so CT --notrack
 * keeps it out): a chain of the node's own, and one jump per data interface from PREROUTING.
 *
 *   -I PREROUTING -i IF -j TWINWALL                    (one per data interface, at the top)
 *   TWINWALL: -p udp -m multiport --dports P,.. -j RETURN   sync/election: never queued, kernel-tracked
 *             (IPv6) -p ipv6-icmp --icmpv6-type T -j RETURN neighbour discovery and MLD: link-local
 *                                                           control the node's own stack answers
 *             -j CT --notrack                               the engine tracks; the kernel must not
 *             -j NFQUEUE --queue-num N [--queue-bypass]
 *
 * Installed with iptables-restore --noflush in one batch per family (atomic: all or nothing), and
 * idempotent: a start after a crash deletes the leftover jumps it finds and re-declares the chain,
 * which flushes it. NFQUEUE rather than nft's queue statement: the kernels this runs on lack
 * nft_queue, while the xt NFQUEUE target works through iptables-nft.
 */
import { execFileSync } from 'node:child_process';
import { DataplaneError } from './errors.js';
import type { ResolvedDataplaneOptions } from './options.js';

export type Family = 4 | 6;

const tools: Record<Family, { show: string; restore: string }> = {
  4: { show: 'iptables', restore: 'iptables-restore' },
  6: { show: 'ip6tables', restore: 'ip6tables-restore' },
};

/** multiport takes at most 15 ports per rule. */
const MULTIPORT_MAX = 15;

/**
 * ICMPv6 types never queued: MLD query/report/done (130-132), router and neighbour discovery
 * (133-137), MLDv2 report (143). They are the IPv6 counterpart of ARP: the node's own stack must
 * answer them at once, and a forward ruleset with a drop policy must not break the link.
 */
export const LINK_CONTROL_ICMPV6_TYPES = [130, 131, 132, 133, 134, 135, 136, 137, 143] as const;

/** The chain's rules for one family (iptables-restore syntax, without the -A CHAIN prefix). */
export function chainRules(o: ResolvedDataplaneOptions, family: Family = 4): string[] {
  const rules: string[] = [];
  for (let i = 0; i < o.excludedUdpPorts.length; i += MULTIPORT_MAX) {
    rules.push(`-p udp -m multiport --dports ${o.excludedUdpPorts.slice(i, i + MULTIPORT_MAX).join(',')} -j RETURN`);
  }
  if (family === 6) for (const t of LINK_CONTROL_ICMPV6_TYPES) rules.push(`-p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`);
  rules.push('-j CT --notrack');
  rules.push(`-j NFQUEUE --queue-num ${o.queueNum}${o.failOpen ? ' --queue-bypass' : ''}`);
  return rules;
}

/** PREROUTING rules (from `iptables -S PREROUTING`) that jump to the chain: leftovers to delete. */
export function findJumps(listing: string, chain: string): string[] {
  const jumps: string[] = [];
  for (const line of listing.split('\n')) {
    const t = line.trim();
    if (t.startsWith('-A PREROUTING ') && (t.endsWith(` -j ${chain}`) || t.includes(` -j ${chain} `))) {
      jumps.push(t.slice('-A '.length));
    }
  }
  return jumps;
}

/** The batch that (re)installs everything: delete leftover jumps, declare (flush) the chain, fill it, jump. */
export function installBatch(o: ResolvedDataplaneOptions, leftoverJumps: string[], family: Family = 4): string {
  const lines = ['*raw', `:${o.chain} - [0:0]`];
  for (const j of leftoverJumps) lines.push(`-D ${j}`);
  lines.push(`-F ${o.chain}`);
  for (const r of chainRules(o, family)) lines.push(`-A ${o.chain} ${r}`);
  // Inserted in reverse so they end up at the top in the order given.
  for (const ifName of [...o.dataInterfaces].reverse()) lines.push(`-I PREROUTING 1 -i ${ifName} -j ${o.chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The batch that removes everything (given the jumps found); empty when the chain does not exist. */
export function removeBatch(chain: string, jumps: string[], chainExists: boolean): string {
  if (!chainExists && jumps.length === 0) return '';
  const lines = ['*raw'];
  for (const j of jumps) lines.push(`-D ${j}`);
  if (chainExists) lines.push(`-F ${chain}`, `-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function listRaw(family: Family): string {
  try {
    return execFileSync(tools[family].show, ['-w', '-t', 'raw', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw rulesError(family, 'listing the raw table', e);
  }
}

function restore(family: Family, batch: string): void {
  try {
    execFileSync(tools[family].restore, ['-w', '--noflush'], { input: batch, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    throw rulesError(family, `applying\n${batch}`, e);
  }
}

function rulesError(family: Family, what: string, e: unknown): DataplaneError {
  const err = e as { stderr?: string; code?: string };
  if (err.code === 'ENOENT') {
    return new DataplaneError('DP_RULES', `${tools[family].restore} not found: install Debian's iptables (scripts/setup.sh)`, { cause: e });
  }
  const root = process.getuid?.() === 0 ? '' : ' (not root: run the node as root or with CAP_NET_ADMIN)';
  return new DataplaneError('DP_RULES', `${tools[family].restore} failed ${what}: ${err.stderr?.trim() ?? String(e)}${root}`, { cause: e });
}

/** Install (or replace leftovers of) the node's rules for one family. */
export function installRules(family: Family, o: ResolvedDataplaneOptions): void {
  restore(family, installBatch(o, findJumps(listRaw(family), o.chain), family));
}

/** Remove the node's rules for one family; nothing to do when they are gone already. */
export function removeRules(family: Family, chain: string): void {
  const listing = listRaw(family);
  const exists = listing.split('\n').some((l) => l.trim() === `-N ${chain}`);
  const batch = removeBatch(chain, findJumps(listing, chain), exists);
  if (batch) restore(family, batch);
}
