/**
 * Differential test against the real thing: the same TCP segments go through Linux's conntrack (in a
 * router namespace, forwarded between a client and a server namespace) and through our tracker;
 * after every segment the TCP state of the flow and whether the segment was INVALID must agree.
 *
 * Topology: client (10.9.1.2) -- router (10.9.1.1 | 10.9.2.1, conntrack, forwarding) -- server (10.9.2.2).
 * Client and server drop every incoming packet in raw PREROUTING so their own stacks never answer:
 * the only packets are the ones the test injects with raw sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Lab, LineAgent, labAvailable, labRequired } from './netns.js';
import { buildIcmpEcho, buildIcmpError, buildTcp, buildUdp } from '../../src/node/packet/build.js';
import { PacketView } from '../../src/node/packet/view.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { Conntrack, CtResult } from '../../src/node/conntrack/conntrack.js';
import { CtState, tcpStateNames } from '../../src/node/conntrack/state.js';

const { SYN, ACK, FIN, RST, PSH } = TcpFlag;
const CLIENT = '10.9.1.2';
const SERVER = '10.9.2.2';
const agentsDir = fileURLToPath(new URL('./agents/', import.meta.url));

interface Step {
  from: 'c' | 's';
  flags: number;
  seq: number;
  ack?: number;
  len?: number;
  win?: number;
  wscale?: number;
}

/** Scenarios: name, client port, steps. Sequence numbers written out so each segment is explicit. */
const C0 = 1_000_000;
const S0 = 7_000_000;
const scenarios: [string, Step[]][] = [
  ['handshake, data, FIN close', [
    { from: 'c', flags: SYN, seq: C0, win: 64240 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1, win: 65160 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 },
    { from: 'c', flags: ACK | PSH, seq: C0 + 1, ack: S0 + 1, len: 100 },
    { from: 's', flags: ACK, seq: S0 + 1, ack: C0 + 101, len: 1000 },
    { from: 'c', flags: FIN | ACK, seq: C0 + 101, ack: S0 + 1001 },
    { from: 's', flags: ACK, seq: S0 + 1001, ack: C0 + 102 },
    { from: 's', flags: FIN | ACK, seq: S0 + 1001, ack: C0 + 102 },
    { from: 'c', flags: ACK, seq: C0 + 102, ack: S0 + 1002 },
  ]],
  ['RST teardown', [
    { from: 'c', flags: SYN, seq: C0 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 },
    { from: 's', flags: RST, seq: S0 + 1 },
  ]],
  ['out-of-window data and blind RST', [
    { from: 'c', flags: SYN, seq: C0, win: 1000 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1, win: 1000 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1, win: 1000 },
    { from: 'c', flags: ACK, seq: C0 + 500_000, ack: S0 + 1, len: 10, win: 1000 },
    { from: 's', flags: RST, seq: S0 + 900_000 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1, len: 10, win: 1000 },
  ]],
  ['retransmitted SYN and SYN/ACK', [
    { from: 'c', flags: SYN, seq: C0 },
    { from: 'c', flags: SYN, seq: C0 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 },
  ]],
  ['simultaneous open', [
    { from: 'c', flags: SYN, seq: C0 },
    { from: 's', flags: SYN, seq: S0 },
    { from: 'c', flags: SYN | ACK, seq: C0, ack: S0 + 1 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 },
  ]],
  ['window scaling on both sides, large window', [
    { from: 'c', flags: SYN, seq: C0, win: 64240, wscale: 7 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1, win: 65160, wscale: 7 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1, win: 2000 },
    { from: 's', flags: ACK, seq: S0 + 1, ack: C0 + 1, len: 1400, win: 500 },
    { from: 's', flags: ACK, seq: S0 + 1 + 200_000, ack: C0 + 1, len: 1400, win: 500 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 + 201_400, win: 2000 },
  ]],
  ['window scale on one side only is not applied', [
    { from: 'c', flags: SYN, seq: C0, win: 64240, wscale: 7 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1, win: 65160 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1, win: 2000 },
    { from: 's', flags: ACK, seq: S0 + 1 + 200_000, ack: C0 + 1, len: 1400, win: 500 },
  ]],
  ['SYN injected into an established connection', [
    { from: 'c', flags: SYN, seq: C0 },
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 + 1 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1 },
    { from: 'c', flags: SYN, seq: C0 + 12345 },
    { from: 'c', flags: ACK, seq: C0 + 1, ack: S0 + 1, len: 5 },
  ]],
  ['mid-stream pickup (loose)', [
    { from: 'c', flags: ACK, seq: C0, ack: S0, len: 10 },
    { from: 's', flags: ACK, seq: S0, ack: C0 + 10, len: 10 },
    { from: 'c', flags: ACK, seq: C0 + 10, ack: S0 + 10 },
  ]],
  ['SYN/ACK and FIN without a connection', [
    { from: 's', flags: SYN | ACK, seq: S0, ack: C0 },
    { from: 'c', flags: FIN | ACK, seq: C0, ack: S0 },
  ]],
  ['sequence numbers wrapping past 2^32', [
    { from: 'c', flags: SYN, seq: 0xffffff00 },
    { from: 's', flags: SYN | ACK, seq: 0xfffffff0, ack: 0xffffff01 },
    { from: 'c', flags: ACK, seq: 0xffffff01, ack: 0xfffffff1, len: 1000 },
    { from: 's', flags: ACK, seq: 0xfffffff1, ack: (0xffffff01 + 1000) >>> 0, len: 1000 },
    { from: 'c', flags: FIN | ACK, seq: (0xffffff01 + 1000) >>> 0, ack: (0xfffffff1 + 1000) >>> 0 },
  ]],
];

const avail = labAvailable();
const skip = !avail.ok && !labRequired;

/**
 * The topology and its agents. The router counts, per packet, which ctstate its FORWARD rules saw
 * (one ACCEPT rule per state) and dumps its conntrack table; Linux defaults for the TCP tracker are
 * set explicitly so the comparison does not depend on the host's settings.
 */
class RouterLab {
  readonly lab = new Lab();
  client!: LineAgent;
  server!: LineAgent;
  router!: LineAgent;

  start(): void {
    if (!avail.ok) throw new Error(`lab required (TWINWALL_REQUIRE_LAB=1) but unavailable: ${avail.why}`);
    const lab = this.lab;
    const c = lab.netns('c');
    const r = lab.netns('r');
    const s = lab.netns('s');
    lab.link(c, '10.9.1.2/24', r, '10.9.1.1/24');
    lab.link(r, '10.9.2.1/24', s, '10.9.2.2/24');
    lab.exec(c, 'ip', ['route', 'add', 'default', 'via', '10.9.1.1']);
    lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '10.9.2.1']);
    lab.exec(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const st of ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED']) {
      lab.exec(r, 'iptables', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', st, '-j', 'ACCEPT']);
    }
    lab.exec(r, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_loose=1', 'net.netfilter.nf_conntrack_tcp_be_liberal=0']);
    for (const ns of [c, s]) lab.exec(ns, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-j', 'DROP']);
    this.client = lab.agent(c, 'python3', [`${agentsDir}rawsend.py`]);
    this.server = lab.agent(s, 'python3', [`${agentsDir}rawsend.py`]);
    this.router = lab.agent(r, 'python3', [`${agentsDir}ctdump.py`]);
  }

  async dump(): Promise<{ ct: string[]; counters: Record<string, number> }> {
    return JSON.parse(await this.router.ask('dump')) as { ct: string[]; counters: Record<string, number> };
  }

  /** Send one packet from a side; returns the ctstate the kernel's rules counted and its table after. */
  async send(fromClient: boolean, pkt: Buffer): Promise<{ ctstate: string; ct: string[] }> {
    const before = await this.dump();
    expect(await (fromClient ? this.client : this.server).ask(pkt.toString('hex'))).toBe('ok');
    await new Promise((r) => setTimeout(r, 30));
    const after = await this.dump();
    const hit = Object.keys(after.counters).filter((k) => after.counters[k] !== before.counters[k]);
    return { ctstate: hit.join(',') || 'none', ct: after.ct };
  }
}

describe.skipIf(skip)('TCP tracking agrees with Linux conntrack (lab)', () => {
  const net = new RouterLab();
  beforeAll(() => net.start(), 30_000);
  afterAll(() => net.lab.cleanup());

  it.each(scenarios.map((s, i) => [s[0], s[1], 41000 + i] as const))('%s', async (_name, steps, sport) => {
    const dport = 80;
    const ct = new Conntrack({ maxEntries: 100 });
    const view = new PacketView();
    const res = new CtResult();
    const trace: string[] = [];
    for (const [i, st] of steps.entries()) {
      const fromClient = st.from === 'c';
      const pkt = buildTcp({
        src: fromClient ? CLIENT : SERVER,
        dst: fromClient ? SERVER : CLIENT,
        sport: fromClient ? sport : dport,
        dport: fromClient ? dport : sport,
        flags: st.flags,
        seq: st.seq >>> 0,
        ack: (st.ack ?? 0) >>> 0,
        window: st.win ?? 64240,
        wscale: st.wscale,
        payloadLength: st.len ?? 0,
        id: i + 1,
      });
      const sent = await net.send(fromClient, pkt);
      const line = sent.ct.find((l) => l.includes(' tcp ') && l.includes(`sport=${sport} dport=${dport} `));
      // "ipv4 2 tcp 6 <timeout> <STATE> src=..."
      const f = line ? line.split(/\s+/) : [];
      const k = { state: f[5] ?? 'none', timeout: Number(f[4] ?? -1) };
      const kernelInvalid = sent.ctstate === 'INVALID';

      view.parse(pkt);
      ct.process(view, 1000 + i, res);
      const oursInvalid = res.state === CtState.INVALID;
      if (!oursInvalid) ct.confirm(res);
      let ours = 'none';
      let oursTimeout = -1;
      ct.table.forEach((slot) => {
        ours = tcpStateNames[ct.table.tcp.stateOf(slot)];
        oursTimeout = Math.round((ct.table.deadlineOf(slot) - (1000 + i)) / 1000);
      });
      trace.push(`#${i} ${st.from} flags=${st.flags} kernel=${k.state}${kernelInvalid ? '/INVALID' : ''} ${k.timeout}s ours=${ours}${oursInvalid ? '/INVALID' : ''} ${oursTimeout}s`);
      // The kernel counts down while the test runs: its figure may be a second or two lower.
      if (k.state !== 'none') expect(oursTimeout - k.timeout, trace.join('\n')).toBeLessThanOrEqual(2);
      if (k.state !== 'none') expect(oursTimeout - k.timeout, trace.join('\n')).toBeGreaterThanOrEqual(0);
      if (process.env.TW_TRACE) console.log(trace.at(-1));
      expect({ step: i, state: ours, invalid: oursInvalid }, trace.join('\n')).toEqual({ step: i, state: k.state, invalid: kernelInvalid });
    }
  });
});

describe.skipIf(skip)('UDP and ICMP tracking agree with Linux conntrack (lab)', () => {
  const net = new RouterLab();
  beforeAll(() => net.start(), 30_000);
  afterAll(() => net.lab.cleanup());

  it('gives every packet the same ctstate and the entries the same timeouts and flags', async () => {
    const ct = new Conntrack({ maxEntries: 100 });
    const view = new PacketView();
    const res = new CtResult();
    const q = buildUdp({ src: CLIENT, dst: SERVER, sport: 5353, dport: 53, payloadLength: 30 });
    const a = buildUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5353, payloadLength: 90 });
    const echo = buildIcmpEcho({ src: CLIENT, dst: SERVER, id: 0x4242, seq: 1 });
    const echoReply = buildIcmpEcho({ src: SERVER, dst: CLIENT, id: 0x4242, seq: 1, reply: true });
    const strayReply = buildIcmpEcho({ src: SERVER, dst: CLIENT, id: 0x4343, seq: 1, reply: true });
    const probe = buildUdp({ src: CLIENT, dst: SERVER, sport: 33434, dport: 33434, payloadLength: 8 });
    const unreach = buildIcmpError({ src: SERVER, dst: CLIENT, type: 3, code: 3, quote: probe });
    const unrelated = buildIcmpError({ src: SERVER, dst: CLIENT, type: 3, code: 3, quote: buildUdp({ src: CLIENT, dst: SERVER, sport: 1, dport: 2 }) });
    const steps: [string, boolean, Buffer][] = [
      ['udp query', true, q], ['udp answer', false, a], ['udp query again', true, q], ['wait 2.2 s', true, Buffer.alloc(0)],
      ['udp query after 2 s: stream, assured', true, q],
      ['echo request', true, echo], ['echo reply', false, echoReply], ['stray echo reply', false, strayReply],
      ['udp probe', true, probe], ['port unreachable for the probe', false, unreach], ['port unreachable for nothing', false, unrelated],
    ];
    const names = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID'];
    const trace: string[] = [];
    for (const [i, [name, fromClient, pkt]] of steps.entries()) {
      if (pkt.length === 0) {
        await new Promise((r) => setTimeout(r, 2200));
        continue;
      }
      const k = await net.send(fromClient, pkt);
      const now = Date.now();
      view.parse(pkt);
      ct.process(view, now, res);
      if (res.state !== CtState.INVALID) ct.confirm(res);
      const ours = names[res.state];
      // Entries: "proto timeout [flags]" per flow, kernel and ours, compared as sets of lines.
      const kernelEntries = k.ct
        .filter((l) => / (udp|icmp) /.test(l))
        .map((l) => { const f = l.split(/\s+/); return `${f[2]} ${Math.round(Number(f[4]) / 10)} ${l.includes('[UNREPLIED]') ? 'U' : ''}${l.includes('[ASSURED]') ? 'A' : ''}`; })
        .sort();
      const ourEntries: string[] = [];
      ct.table.forEach((slot) => {
        const st = ct.table.statusOf(slot);
        const proto = ct.table.tuples[ct.table.tupleOffset(slot, 0) + 9] & 0xff;
        // Kernel timeouts count down while the test runs: compare in tens of seconds.
        const left = Math.round((ct.table.deadlineOf(slot) - now) / 1000 / 10);
        ourEntries.push(`${proto === 17 ? 'udp' : 'icmp'} ${left} ${st & 1 ? '' : 'U'}${st & 2 ? 'A' : ''}`);
      });
      ourEntries.sort();
      trace.push(`#${i} ${name}: kernel ${k.ctstate} ours ${ours}; kernel [${kernelEntries.join(' | ')}] ours [${ourEntries.join(' | ')}]`);
      if (process.env.TW_TRACE) console.log(trace.at(-1));
      expect({ ctstate: ours, entries: ourEntries }, trace.join('\n')).toEqual({ ctstate: k.ctstate, entries: kernelEntries });
    }
  });
});
