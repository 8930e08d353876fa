/**
 * The main job until the data plane exists: the engine on generated traffic, then a report of
 * what it tracked. Traffic: TCP connections (handshake, data, FIN and RST teardowns), UDP queries,
 * pings, an ICMP error for a tracked flow, unsolicited inbound connections, a port scan, malformed
 * packets and blind RST injection. Every packet is real bytes through Engine.process, on a
 * simulated clock.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Engine, EngineResult, dropReasonNames, type PacketMeta } from '../node/engine/index.js';
import { compileRuleset, parseRuleset, Verdict } from '../node/filter/index.js';
import { buildIcmpEcho, buildIcmpError, buildTcp, buildUdp, TcpFlag, invalidReasonName } from '../node/packet/index.js';
import { ctStateNames, destroyReasonNames, formatEntry, type ConntrackEventSink } from '../node/conntrack/index.js';

const { SYN, ACK, FIN, RST, PSH } = TcpFlag;
const rulesPath = fileURLToPath(new URL('../../../deploy/examples/rules.yaml', import.meta.url));

// Interfaces as the kernel would number them: 2 = inside (clients), 3 = outside (servers).
const INSIDE = 2;
const OUTSIDE = 3;
const ifNames: Record<number, string> = { [INSIDE]: 'inside0', [OUTSIDE]: 'outside0' };

let now = Date.UTC(2026, 10, 23, 12, 0, 0);
const ruleset = compileRuleset(parseRuleset(readFileSync(rulesPath, 'utf8')), { interfaceName: (i: number) => ifNames[i] });
const engine = new Engine({ conntrack: { maxEntries: 65536 }, ruleset, clock: () => now });

const events = { new: 0, update: 0, destroy: new Map<string, number>() };
const sink: ConntrackEventSink = {
  ctNew: () => void events.new++,
  ctUpdate: () => void events.update++,
  ctDestroy: (_t, _s, reason) => void events.destroy.set(destroyReasonNames[reason], (events.destroy.get(destroyReasonNames[reason]) ?? 0) + 1),
};
engine.setEventSink(sink);

const out = new EngineResult();
const seen = new Map<string, number>();
const emitted: Buffer[] = [];
function send(what: string, pkt: Buffer, inIf: number): number {
  now += 1;
  const meta: PacketMeta = { inIf, outIf: inIf === INSIDE ? OUTSIDE : INSIDE, mark: 0, now };
  const v = engine.process(pkt, 0, pkt.length, meta, out);
  const key = `${what.padEnd(34)} ${v === Verdict.ACCEPT ? 'ACCEPT' : 'DROP  '} ${ctStateNames[out.ctState]}${out.invalidReason ? ` (${invalidReasonName(out.invalidReason)})` : ''}${out.emit.length ? ' +answer' : ''}`;
  seen.set(key, (seen.get(key) ?? 0) + 1);
  emitted.push(...out.emit);
  return v;
}

function tcpConversation(client: string, server: string, sport: number, dport: number, bytes: number, close: 'fin' | 'rst' | 'open'): void {
  let cseq = 1000 + sport * 7;
  let sseq = 900000 + sport * 13;
  const c = (flags: number, len = 0) => {
    send('tcp client->server', buildTcp({ src: client, dst: server, sport, dport, seq: cseq, ack: flags & ACK ? sseq : 0, flags, window: 64240, wscale: flags === SYN ? 7 : undefined, mss: flags === SYN ? 1460 : undefined, sackPermitted: flags === SYN, payloadLength: len }), INSIDE);
    cseq += len + (flags & (SYN | FIN) ? 1 : 0);
  };
  const s = (flags: number, len = 0) => {
    send('tcp server->client', buildTcp({ src: server, dst: client, sport: dport, dport: sport, seq: sseq, ack: cseq, flags, window: 65160, wscale: flags === (SYN | ACK) ? 7 : undefined, mss: flags === (SYN | ACK) ? 1460 : undefined, sackPermitted: flags === (SYN | ACK), payloadLength: len }), OUTSIDE);
    sseq += len + (flags & (SYN | FIN) ? 1 : 0);
  };
  c(SYN);
  s(SYN | ACK);
  c(ACK);
  c(ACK | PSH, 120);
  for (let sent = 0; sent < bytes; sent += 1400) {
    s(ACK, Math.min(1400, bytes - sent));
    if ((sent / 1400) % 2 === 1) c(ACK);
  }
  c(ACK);
  if (close === 'fin') {
    c(FIN | ACK);
    s(FIN | ACK);
    c(ACK);
  } else if (close === 'rst') {
    c(RST | ACK);
  }
}

// 1. Web traffic: 12 connections, some closed by FIN, some by RST, some left open.
for (let i = 0; i < 12; i++) {
  tcpConversation(`10.1.0.${10 + (i % 4)}`, '10.2.0.80', 40000 + i, i % 3 === 0 ? 443 : 80, 6000 + i * 1000, i % 3 === 0 ? 'open' : i % 3 === 1 ? 'fin' : 'rst');
}
// 2. DNS: queries and answers.
for (let i = 0; i < 8; i++) {
  const sport = 53000 + i;
  send('udp dns query', buildUdp({ src: '10.1.0.10', dst: '10.2.0.53', sport, dport: 53, payloadLength: 40 }), INSIDE);
  if (i < 6) send('udp dns answer', buildUdp({ src: '10.2.0.53', dst: '10.1.0.10', sport: 53, dport: sport, payloadLength: 120 }), OUTSIDE);
}
// 3. Ping, IPv4 and IPv6.
for (let seq = 1; seq <= 3; seq++) {
  send('icmp echo request', buildIcmpEcho({ src: '10.1.0.11', dst: '10.2.0.80', id: 4242, seq }), INSIDE);
  send('icmp echo reply', buildIcmpEcho({ src: '10.2.0.80', dst: '10.1.0.11', id: 4242, seq, reply: true }), OUTSIDE);
  send('icmpv6 echo request', buildIcmpEcho({ src: 'fd00:1::11', dst: 'fd00:2::80', id: 77, seq }), INSIDE);
  send('icmpv6 echo reply', buildIcmpEcho({ src: 'fd00:2::80', dst: 'fd00:1::11', id: 77, seq, reply: true }), OUTSIDE);
}
// 4. A UDP flow to a closed port: the server answers with ICMP port unreachable (RELATED).
const probe = buildUdp({ src: '10.1.0.12', dst: '10.2.0.80', sport: 33434, dport: 33434, payloadLength: 32 });
send('udp to closed port', probe, INSIDE);
send('icmp port unreachable (related)', buildIcmpError({ src: '10.2.0.80', dst: '10.1.0.12', type: 3, code: 3, quote: probe }), OUTSIDE);
// 5. Unsolicited inbound connections and a port scan from outside.
for (let p = 20; p < 30; p++) send('inbound scan syn', buildTcp({ src: '198.51.100.7', dst: '10.1.0.10', sport: 61000, dport: p, flags: SYN }), OUTSIDE);
// 6. An inside host probing ports the policy does not allow: rejected with RST.
for (let p = 8000; p < 8005; p++) send('outbound syn to closed port', buildTcp({ src: '10.1.0.13', dst: '10.2.0.80', sport: 50000 + p, dport: p, flags: SYN }), INSIDE);
// 7. Blind RST injection into an open connection (wrong sequence number).
send('blind rst injection', buildTcp({ src: '10.2.0.80', dst: '10.1.0.10', sport: 443, dport: 40000, seq: 123, flags: RST }), OUTSIDE);
// 8. Malformed packets: truncated, SYN+FIN, bad header length.
const good = buildTcp({ src: '10.1.0.10', dst: '10.2.0.80', sport: 1, dport: 80, flags: SYN });
send('malformed: truncated', good.subarray(0, 30), INSIDE);
send('malformed: syn+fin', buildTcp({ src: '10.1.0.10', dst: '10.2.0.80', sport: 2, dport: 80, flags: SYN | FIN }), INSIDE);
const badIhl = Buffer.from(good);
badIhl[0] = 0x43;
send('malformed: ip header length 12', badIhl, INSIDE);
send('malformed: garbage', Buffer.from('this is not an IP packet at all'), INSIDE);

// Let 40 s pass: closed connections in CLOSE expire; TIME_WAIT (120 s) remain.
now += 40_000;
engine.tick();

const t = engine.conntrack.table;
const lines: string[] = [];
t.forEach((slot) => {
  lines.push(formatEntry(t, slot, now));
});
const s = engine.stats;
console.log('twinwall engine demo: generated traffic through parse, conntrack and the demo ruleset\n');
console.log('What each kind of packet met (count, verdict, ct state):');
for (const [k, n] of seen) console.log(`  ${String(n).padStart(3)} x ${k}`);
console.log(`\nConnection table (conntrack -L), ${t.count} entries after 40 s:`);
for (const l of lines.sort()) console.log(`  ${l}`);
console.log('\nVerdicts:');
console.log(`  accepted ${s.acceptedPackets} packets / ${s.acceptedBytes} bytes; dropped ${s.droppedPackets} packets / ${s.droppedBytes} bytes; ${s.rejects} rejects answered (${emitted.length} packets emitted)`);
console.log('Drops by reason:');
s.drops.forEach((n, i) => n > 0 && console.log(`  ${dropReasonNames[i]}: ${n}`));
console.log('Invalid packets by reason:');
s.invalid.forEach((n, i) => n > 0 && console.log(`  ${invalidReasonName(i)}: ${n}`));
console.log(`Conntrack events: ${events.new} new, ${events.update} update, destroy ${[...events.destroy].map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}`);
console.log('\nRule counters (packets, bytes):');
for (const chain of engine.filter.counters()) {
  for (const r of chain.rules) {
    if (r.packets > 0) console.log(`  ${chain.name.padEnd(10)} #${String(r.index).padEnd(3)} ${String(r.packets).padStart(5)} ${String(r.bytes).padStart(8)}  ${r.comment ?? ''}`);
  }
  if (chain.policy) console.log(`  ${chain.name.padEnd(10)} policy ${chain.policy.padEnd(6)} ${String(chain.policyPackets).padStart(3)} ${String(chain.policyBytes).padStart(8)}`);
}
