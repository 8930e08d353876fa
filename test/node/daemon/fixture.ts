/**
 * A node for tests: a temp dir with a config and a ruleset, a fake data plane (no NFQUEUE, no
 * root), logs collected in memory, a fake clock, a real control socket and metrics server.
 * Options add config (a sync section and its key files), inject the sync transport, and let the
 * clock move with real time (sync's timers compare against it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { EngineResult } from '../../../src/node/engine/index.js';
import { DataplaneCounters, type DataplaneOptions, type DataplaneStats } from '../../../src/node/dataplane/index.js';
import { FirewallNode, parseConfig, type DataplanePort } from '../../../src/node/daemon/index.js';
import { buildTcp, buildUdp, TcpFlag } from '../../../src/node/packet/index.js';
import type { SyncTransport } from '../../../src/sync/index.js';

export const IN = 2;
export const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };

export const RULES = `
chains:
  forward:
    policy: drop
    rules:
      - comment: replies
        match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - comment: nothing new from outside
        match: { in: outside0 }
        target: DROP
      - comment: web
        match: { proto: tcp, dport: [80, 443], ctstate: NEW }
        target: ACCEPT
      - comment: dns
        match: { proto: udp, dport: 53 }
        target: ACCEPT
`;

/** Same as RULES with dns refused: tells the rulesets apart. */
export const RULES_NO_DNS = RULES.replace('dport: 53 }\n        target: ACCEPT', 'dport: 53 }\n        target: DROP');

export const BAD_RULES = `
chains:
  forward:
    policy: maybe
    rules:
      - match: { proto: tcp, dport: "2000-1000" }
        target: ACCEPT
`;

export class FakeDataplane implements DataplanePort {
  started = 0;
  stopped = 0;
  running = false;
  readonly counters = new DataplaneCounters();
  queueDropped = 7;
  userDropped = 2;
  /** What the node asked of the data plane. */
  options: DataplaneOptions | null = null;

  async start(): Promise<void> {
    this.started++;
    this.running = true;
  }

  async stop(): Promise<void> {
    this.stopped++;
    this.running = false;
  }

  stats(): DataplaneStats {
    return {
      running: this.running, queueNum: 0, failOpen: false, counters: this.counters,
      kernel: { queueNum: 0, peerPortId: 1, waiting: 0, copyMode: 2, copyRange: 65535, queueDropped: this.queueDropped, userDropped: this.userDropped, idSequence: 100 },
      binding: null,
    };
  }
}

export interface TestNode {
  node: FirewallNode;
  dataplane: FakeDataplane;
  dir: string;
  socket: string;
  rulesPath: string;
  logs: Record<string, unknown>[];
  clock: { now: number };
  cleanup(): Promise<void>;
}

export interface TestNodeOptions {
  /** node.name (default fw-test). */
  name?: string;
  /** YAML appended to the config, e.g. a sync section. */
  configExtra?: string;
  /** Files written to the node's folder before its config is read (key files). */
  files?: Record<string, string | Buffer>;
  /** The sync link (sync section needed); the node's default would open UDP. */
  syncTransport?: SyncTransport;
  /** engine.tick() and the sync watch period (default 1000 ms). */
  tickMs?: number;
  /** The clock moves with real time from its start (tests may still move it on). */
  flowingClock?: boolean;
}

/** A clock starting at `start` that moves with real time; setting `now` moves it on or back. */
export function flowingClock(start: number): { now: number } {
  let offset = start - performance.now();
  return {
    get now() {
      return offset + performance.now();
    },
    set now(v: number) {
      offset = v - performance.now();
    },
  };
}

export function writeNodeFiles(dir: string, rules = RULES, o: TestNodeOptions = {}): { configPath: string; rulesPath: string; socket: string } {
  const rulesPath = join(dir, 'rules.yaml');
  const socket = join(dir, 'control.sock');
  writeFileSync(rulesPath, rules);
  for (const [name, content] of Object.entries(o.files ?? {})) writeFileSync(join(dir, name), content);
  const configPath = join(dir, 'node.yaml');
  writeFileSync(configPath, `
node: { name: ${o.name ?? 'fw-test'} }
dataplane: { interfaces: [inside0, outside0], queue: 3 }
ruleset: rules.yaml
conntrack: { maxEntries: 1024 }
control: { socket: control.sock }
metrics: { listen: "127.0.0.1:0" }
log: { level: debug }
${o.configExtra ?? ''}`);
  return { configPath, rulesPath, socket };
}

export async function startTestNode(o: TestNodeOptions = {}): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-node-'));
  const { configPath, rulesPath, socket } = writeNodeFiles(dir, RULES, o);
  const { readFileSync } = await import('node:fs');
  const config = parseConfig(readFileSync(configPath, 'utf8'), dir, configPath);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const start = Date.UTC(2026, 10, 23, 12, 0, 0);
  const clock = o.flowingClock ? flowingClock(start) : { now: start };
  const dataplane = new FakeDataplane();
  const syncTransport = o.syncTransport;
  const node = new FirewallNode({
    config, logger, clock: () => clock.now, interfaceName: (i) => names[i], defaultMetrics: true, tickMs: o.tickMs,
    dataplane: (_engine, options) => {
      dataplane.options = options;
      return dataplane;
    },
    syncTransport: syncTransport ? () => Promise.resolve(syncTransport) : undefined,
  });
  await node.start();
  return {
    node, dataplane, dir, socket, rulesPath, logs, clock,
    async cleanup() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const { SYN, ACK } = TcpFlag;

/** Feeds traffic through engine.process: a TCP handshake to :80, a UDP query to :53, a refused SYN to :22. */
export function feedTraffic(t: TestNode): { accepted: number; dropped: number; bytes: number } {
  const out = new EngineResult();
  let accepted = 0;
  let dropped = 0;
  let bytes = 0;
  const send = (pkt: Buffer, inIf: number): void => {
    t.clock.now += 1;
    const v = t.node.engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now: t.clock.now }, out);
    if (v === 1) accepted++;
    else dropped++;
    bytes += pkt.length;
  };
  send(buildTcp({ src: '10.1.0.5', dst: '10.2.0.9', sport: 40000, dport: 80, seq: 1000, flags: SYN, window: 64240, mss: 1460 }), IN);
  send(buildTcp({ src: '10.2.0.9', dst: '10.1.0.5', sport: 80, dport: 40000, seq: 5000, ack: 1001, flags: SYN | ACK, window: 65160, mss: 1460 }), OUT);
  send(buildTcp({ src: '10.1.0.5', dst: '10.2.0.9', sport: 40000, dport: 80, seq: 1001, ack: 5001, flags: ACK, window: 64240 }), IN);
  send(buildUdp({ src: '10.1.0.6', dst: '10.2.0.53', sport: 5353, dport: 53, payloadLength: 30 }), IN);
  send(buildTcp({ src: '10.1.0.7', dst: '10.2.0.9', sport: 40001, dport: 22, seq: 1, flags: SYN, window: 64240 }), IN);
  return { accepted, dropped, bytes };
}
