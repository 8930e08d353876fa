/**
 * twinwall's NFQUEUE binding (native/nfqueue, src/node/dataplane/binding.ts) against the real
 * kernel queue, in a namespace of its own: UDP datagrams on loopback go through raw OUTPUT into
 * the queue, a lab agent (agents/nfq-queue.ts) answers them, and a receiver on loopback shows
 * what the verdicts did. A burst arrives in batches (more than one packet per handler call);
 * drops, rewritten bytes, replacement packets and marks reach the kernel; close() unbinds, and the
 * same queue can be bound again by the same process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { compileProject } from './compile.js';
import { Lab, labAvailable, labRequired, type LineAgent } from './netns.js';

const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

const root = fileURLToPath(new URL('../../', import.meta.url));
const agentPath = fileURLToPath(new URL('../../dist/test/lab/agents/nfq-queue.js', import.meta.url));
const QUEUE = 77;
const PORT = 9999;

/** Send `n` datagrams "a<i>" to the loopback receiver at once, then collect for 0.5 s. */
const SEND_RECEIVE = [
  'import json, socket, sys',
  'n = int(sys.argv[1])',
  'r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  'r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)',
  `r.bind(("127.0.0.1", ${PORT}))`,
  'r.settimeout(0.5)',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  `for i in range(n): s.sendto(b"a%d" % i, ("127.0.0.1", ${PORT}))`,
  'got = []',
  'try:',
  '    while True: got.append(r.recv(2048).decode("latin1"))',
  'except socket.timeout:',
  '    pass',
  'print(json.dumps(got))',
].join('\n');

describe.skipIf(!avail.ok)('NFQUEUE binding against the kernel', () => {
  const lab = new Lab();
  let ns = '';
  let agent: LineAgent;

  const ask = async (line: string): Promise<Record<string, unknown>> => {
    const a = JSON.parse(await agent.ask(line, 10_000)) as Record<string, unknown>;
    if (a.ok !== true) throw new Error(`agent: ${line}: ${JSON.stringify(a)}`);
    return a;
  };
  const sendReceive = (n: number): string[] => JSON.parse(lab.exec(ns, 'python3', ['-c', SEND_RECEIVE, String(n)])) as string[];
  const counters = async (): Promise<{ counters: Record<string, number>; batches: number; largest: number }> =>
    (await ask('stats')) as unknown as { counters: Record<string, number>; batches: number; largest: number };

  beforeAll(() => {
    compileProject(root);
    ns = lab.netns('nfq');
    lab.exec(ns, 'iptables', ['-t', 'raw', '-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', String(QUEUE)]);
    // Counts what leaves with the mark the 'mark' handler sets.
    lab.exec(ns, 'iptables', ['-A', 'OUTPUT', '-o', 'lo', '-p', 'udp', '--dport', String(PORT), '-m', 'mark', '--mark', '42']);
    agent = lab.agent(ns, 'node', [agentPath, String(QUEUE)]);
  }, 120_000);

  afterAll(() => lab.cleanup());

  it('hands a burst over in batches and accepts every packet', async () => {
    await ask('open accept');
    const got = sendReceive(800);
    expect(got.length).toBe(800);
    expect(new Set(got).size).toBe(800);
    const s = await counters();
    expect(s.counters.packets).toBe(800);
    expect(s.largest).toBeGreaterThan(1);
    expect(s.batches).toBeLessThan(800);
    expect(s.counters.kernelErrors).toBe(0);
    expect(s.counters.sendErrors).toBe(0);
    await ask('close');
  });

  it('drops the packets whose verdict is drop, and only those', async () => {
    await ask('open drop-odd');
    const got = sendReceive(400);
    expect(got.length).toBe(200);
    expect(got.every((p) => Number(p.slice(1)) % 2 === 0)).toBe(true);
    await ask('close');
  });

  it('sends the bytes the handler rewrote in place', async () => {
    await ask('open rewrite');
    const got = sendReceive(300);
    expect(got.length).toBe(300);
    expect(got.every((p) => p.startsWith('b'))).toBe(true);
    await ask('close');
  });

  it('sends a longer replacement packet built at the emit offset', async () => {
    await ask('open replace');
    const got = sendReceive(200);
    expect(got.length).toBe(200);
    expect(got.sort()).toEqual(Array.from({ length: 200 }, (_, i) => `replaced-${i}`).sort());
    await ask('close');
  });

  it('never sends bytes from outside its arena: such a verdict drops the packet and is counted', async () => {
    await ask('open bad-bytes');
    expect(sendReceive(50)).toEqual([]);
    const s = await counters();
    expect(s.counters.packets).toBe(50);
    expect(s.counters.sendErrors).toBe(50);
    expect(s.counters.kernelErrors).toBe(0);
    await ask('close');
  });

  it('sets the mark the verdict carries', async () => {
    await ask('open mark');
    const got = sendReceive(100);
    expect(got.length).toBe(100);
    const line = lab.exec(ns, 'iptables', ['-L', 'OUTPUT', '-v', '-x', '-n']).split('\n').find((l) => l.includes('mark match 0x2a'));
    expect(Number(line?.trim().split(/\s+/)[0])).toBe(100);
    await ask('close');
  });

  it('close unbinds the queue, and the same process binds it again', async () => {
    await ask('open accept');
    expect((await ask('proc')).queues).toContain(QUEUE);
    await ask('close');
    expect((await ask('proc')).queues).not.toContain(QUEUE);
    // Unbound and fail-closed (no --queue-bypass): nothing gets through.
    expect(sendReceive(5)).toEqual([]);
    await ask('open accept');
    expect(sendReceive(5).length).toBe(5);
    await ask('close');
  });
});
