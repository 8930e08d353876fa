import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { TcpState, tcpStateNames } from '../../../src/node/conntrack/state.js';
import {
  TCP_TRANSITIONS,
  TCP_TRANSITIONS_FLAT,
  TcpFlagClass,
  TcpTransition,
  tcpFlagClass,
  tcpFlagClassNames,
  tcpFlagsValid,
  tcpTransition,
} from '../../../src/node/conntrack/tcp-states.js';

/**
 * The kernel's tcp_conntracks (net/netfilter/nf_conntrack_proto_tcp.c, 6.x), typed here again
 * from the kernel's grid, column order sNO sSS sSR sES sFW sCW sLA sTW sCL sS2.
 */
const KERNEL: Record<'ORIGINAL' | 'REPLY', Record<string, string>> = {
  ORIGINAL: {
    SYN: '    sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2',
    SYNACK: ' sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR',
    FIN: '    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV',
    ACK: '    sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV',
    RST: '    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL',
    NONE: '   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV',
  },
  REPLY: {
    SYN: '    sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2',
    SYNACK: ' sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR',
    FIN: '    sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV',
    ACK: '    sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG',
    RST: '    sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL',
    NONE: '   sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV',
  },
};

const SHORT: Record<string, number> = {
  sNO: TcpState.NONE,
  sSS: TcpState.SYN_SENT,
  sSR: TcpState.SYN_RECV,
  sES: TcpState.ESTABLISHED,
  sFW: TcpState.FIN_WAIT,
  sCW: TcpState.CLOSE_WAIT,
  sLA: TcpState.LAST_ACK,
  sTW: TcpState.TIME_WAIT,
  sCL: TcpState.CLOSE,
  sS2: TcpState.SYN_SENT2,
  sIV: TcpTransition.INVALID,
  sIG: TcpTransition.IGNORE,
};

function name(code: number): string {
  if (code === TcpTransition.INVALID) return 'INVALID';
  if (code === TcpTransition.IGNORE) return 'IGNORE';
  return tcpStateNames[code];
}

describe('TCP state transition table', () => {
  it('matches the kernel in every one of the 2 x 6 x 10 cells', () => {
    let visited = 0;
    const mismatches: string[] = [];
    for (const [dir, dirName] of [[0, 'ORIGINAL'], [1, 'REPLY']] as const) {
      for (let cls = 0; cls < 6; cls++) {
        const expectedRow = KERNEL[dirName][tcpFlagClassNames[cls]].split(',').map((c) => SHORT[c.trim()]);
        expect(expectedRow).toHaveLength(10);
        for (let st = 0; st < 10; st++) {
          visited++;
          const got = tcpTransition(dir, cls, st);
          // The nested const table and the flat hot-path copy must agree too.
          expect(TCP_TRANSITIONS[dir][cls][st]).toBe(got);
          expect(TCP_TRANSITIONS_FLAT[(dir * 6 + cls) * 10 + st]).toBe(got);
          if (got !== expectedRow[st]) {
            mismatches.push(
              `${dirName} ${tcpFlagClassNames[cls]} in ${tcpStateNames[st]}: got ${name(got)}, kernel ${name(expectedRow[st])}`,
            );
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(visited).toBe(120);
  });

  it('gives every cell a comment saying why', () => {
    const src = readFileSync(fileURLToPath(new URL('../../../src/node/conntrack/tcp-states.ts', import.meta.url)), 'utf8');
    const cells = src.split('\n').filter((l) => /^\s+s(NO|SS|SR|ES|FW|CW|LA|TW|CL|S2|IV|IG), \/\/ \S/.test(l));
    expect(cells).toHaveLength(120);
  });

  it('reduces flags to classes in the kernel priority order (RST > SYN > FIN > ACK)', () => {
    expect(tcpFlagClass(TcpFlag.SYN)).toBe(TcpFlagClass.SYN);
    expect(tcpFlagClass(TcpFlag.SYN | TcpFlag.ACK)).toBe(TcpFlagClass.SYNACK);
    expect(tcpFlagClass(TcpFlag.SYN | TcpFlag.ECE | TcpFlag.CWR)).toBe(TcpFlagClass.SYN);
    expect(tcpFlagClass(TcpFlag.FIN | TcpFlag.ACK)).toBe(TcpFlagClass.FIN);
    expect(tcpFlagClass(TcpFlag.FIN)).toBe(TcpFlagClass.FIN);
    expect(tcpFlagClass(TcpFlag.ACK | TcpFlag.PSH)).toBe(TcpFlagClass.ACK);
    expect(tcpFlagClass(TcpFlag.RST | TcpFlag.ACK)).toBe(TcpFlagClass.RST);
    expect(tcpFlagClass(TcpFlag.RST | TcpFlag.SYN | TcpFlag.FIN)).toBe(TcpFlagClass.RST);
    expect(tcpFlagClass(TcpFlag.SYN | TcpFlag.FIN)).toBe(TcpFlagClass.SYN);
    expect(tcpFlagClass(0)).toBe(TcpFlagClass.NONE);
    expect(tcpFlagClass(TcpFlag.PSH | TcpFlag.URG)).toBe(TcpFlagClass.NONE);
  });

  it('accepts exactly the flag combinations real stacks send (kernel tcp_valid_flags)', () => {
    const valid: number[] = [];
    for (let f = 0; f < 256; f++) if (tcpFlagsValid(f)) valid.push(f & ~(TcpFlag.PSH | TcpFlag.ECE | TcpFlag.CWR));
    const distinct = [...new Set(valid)].sort((a, b) => a - b);
    const { SYN, ACK, FIN, RST, URG } = TcpFlag;
    expect(distinct).toEqual([SYN, RST, SYN | ACK, ACK, FIN | ACK, RST | ACK, SYN | URG, ACK | URG, FIN | ACK | URG].sort((a, b) => a - b));
    expect(tcpFlagsValid(SYN | FIN)).toBe(false); // SYN/FIN scan
    expect(tcpFlagsValid(0)).toBe(false); // null scan
    expect(tcpFlagsValid(FIN | TcpFlag.PSH | URG)).toBe(false); // Xmas scan
    expect(tcpFlagsValid(ACK | TcpFlag.PSH | TcpFlag.ECE)).toBe(true);
  });
});
