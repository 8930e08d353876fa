/**
 * Text renderings for the CLI: entries as `conntrack -L` prints them (the daemon sends the line),
 * rule counters as `iptables -L -v -n` lays them out, stats as indented key: value lines.
 */
import type { CtEntry } from '../../node/control/index.js';
import type { ChainCounters } from '../../node/filter/index.js';

export function formatEntries(entries: CtEntry[]): string {
  return entries.map((e) => `${e.line} id=${e.id}\n`).join('');
}

function human(n: number): string {
  if (n < 100_000) return String(n);
  if (n < 100_000_000) return `${Math.round(n / 1000)}K`;
  return `${Math.round(n / 1_000_000)}M`;
}

export function formatCounters(chains: ChainCounters[]): string {
  const lines: string[] = [];
  for (const c of chains) {
    const policy = c.policy ? `policy ${c.policy.toUpperCase()} ${human(c.policyPackets)} packets, ${human(c.policyBytes)} bytes` : `${human(c.policyPackets)} returned`;
    lines.push(`Chain ${c.name} (${policy})`);
    lines.push(`${'num'.padEnd(4)} ${'pkts'.padStart(8)} ${'bytes'.padStart(8)}  comment`);
    for (const r of c.rules) lines.push(`${String(r.index).padEnd(4)} ${human(r.packets).padStart(8)} ${human(r.bytes).padStart(8)}  ${r.comment ?? ''}`);
    lines.push('');
  }
  return `${lines.join('\n')}`;
}

export function formatTree(value: unknown, indent = ''): string {
  if (value === null || typeof value !== 'object') return `${String(value)}\n`;
  let out = '\n';
  for (const [k, v] of Object.entries(value)) {
    out += v !== null && typeof v === 'object' ? `${indent}${k}:${formatTree(v, `${indent}  `)}` : `${indent}${k}: ${String(v)}\n`;
  }
  return out;
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
