import { describe, expect, it } from 'vitest';
import { Engine, EngineResult } from '../../../../src/node/engine/engine.js';
import { compileRuleset, parseRuleset, Verdict } from '../../../../src/node/filter/index.js';
import { buildUdp } from '../../../../src/node/packet/build.js';
import { CtState } from '../../../../src/node/conntrack/state.js';

const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };
const C = '10.1.0.5';
const S = '10.2.0.9';

function tftpPair(helper = true) {
  let now = 1_000_000;
  const engine = new Engine({
    conntrack: { maxEntries: 1000 },
    ruleset: compileRuleset(parseRuleset(`
chains:
  raw:
    rules: ${helper ? '\n      - { match: { proto: udp, dport: 69 }, target: { helper: tftp } }' : '[]'}
  forward:
    policy: drop
    rules:
      - { match: { ctstate: [ESTABLISHED, RELATED] }, target: ACCEPT }
      - { match: { in: inside0, proto: udp, dport: 69, ctstate: NEW }, target: ACCEPT }
`), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
  });
  const out = new EngineResult();
  const udp = (src: string, sport: number, dst: string, dport: number, payload: Buffer, inIf: number) => {
    now += 1;
    const p = buildUdp({ src, dst, sport, dport, payload });
    engine.process(p, 0, p.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
    return { verdict: out.verdict, state: out.ctState };
  };
  return { engine, udp };
}

const rrq = Buffer.concat([Buffer.from([0, 1]), Buffer.from('file.bin\0octet\0')]);
const data1 = Buffer.concat([Buffer.from([0, 3, 0, 1]), Buffer.alloc(512, 7)]);
const ack1 = Buffer.from([0, 4, 0, 1]);

describe('TFTP helper', () => {
  it("a read request makes the server's reply from its own port RELATED; the client's ACKs then pass as ESTABLISHED", () => {
    const f = tftpPair();
    expect(f.udp(C, 50000, S, 69, rrq, IN).verdict).toBe(Verdict.ACCEPT);
    expect(f.engine.helpers.tftp.expected).toBe(1);
    expect(f.udp(S, 41234, C, 50000, data1, OUT)).toEqual({ verdict: Verdict.ACCEPT, state: CtState.RELATED });
    expect(f.udp(C, 50000, S, 41234, ack1, IN)).toEqual({ verdict: Verdict.ACCEPT, state: CtState.ESTABLISHED });
    expect(f.engine.conntrack.expectations.count).toBe(0);
  });

  it('without the helper the reply is dropped; other hosts and other client ports are not expected', () => {
    const plain = tftpPair(false);
    plain.udp(C, 50000, S, 69, rrq, IN);
    expect(plain.udp(S, 41234, C, 50000, data1, OUT).verdict).toBe(Verdict.DROP);
    const f = tftpPair();
    f.udp(C, 50001, S, 69, rrq, IN);
    expect(f.udp('10.2.0.66', 41234, C, 50001, data1, OUT).verdict).toBe(Verdict.DROP);
    expect(f.udp(S, 41234, C, 50002, data1, OUT).verdict).toBe(Verdict.DROP);
  });

  it('only RRQ and WRQ announce; a datagram too short for an opcode is counted', () => {
    const f = tftpPair();
    f.udp(C, 50003, S, 69, Buffer.from([0, 5, 0, 1, 0]), IN); // ERROR
    f.udp(C, 50004, S, 69, Buffer.from([7]), IN);
    expect(f.engine.helpers.tftp.expected).toBe(0);
    expect(f.engine.helpers.tftp.truncated).toBe(1);
    f.udp(C, 50005, S, 69, Buffer.concat([Buffer.from([0, 2]), Buffer.from('up.bin\0octet\0')]), IN); // WRQ
    expect(f.engine.helpers.tftp.expected).toBe(1);
  });
});
