/**
 * State sync carries connection helpers' state: node a runs an FTP control connection behind
 * SNAT whose PORT was rewritten (sequence numbers adjusted) and two data connections announced
 * but not yet opened; node b, which only received sync, takes over mid-session: it goes on
 * adjusting the control connection (both ends see contiguous streams) and lets in both data
 * connections, NATed like their master.
 */
import { describe, expect, it } from 'vitest';
import { Engine, EngineResult } from '../../src/node/engine/index.js';
import { compileRuleset, parseRuleset, Verdict } from '../../src/node/filter/index.js';
import { buildTcp } from '../../src/node/packet/build.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { CtState, CtStatus } from '../../src/node/conntrack/index.js';
import { LoopTransport } from '../../src/sync/index.js';
import { encodeRecord, decodeEntry, newDecodedEntry } from '../../src/sync/entry-codec.js';
import { ENTRY_RECORD_WORDS } from '../../src/node/conntrack/index.js';
import { Section } from '../../src/sync/wire.js';
import { HELPER_STATE_MAX_WORDS } from '../../src/node/conntrack/helpers/state.js';
import { side } from './pair.js';
import { C, IN, OUT, RULES, S, V, connection, names, parse, type Got, type Through } from '../node/conntrack/helpers/ftp-ends.js';

const { SYN } = TcpFlag;

function ftpEngine(): Engine {
  return new Engine({ conntrack: { maxEntries: 1000 }, ruleset: compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => names[i] }) });
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** What leaving master does to the entries (src/failover/takeover.ts): this node's become the peer's. */
function demote(e: Engine): void {
  const t = e.conntrack.table;
  t.forEach((slot) => t.addStatus(slot, CtStatus.REPLICATED));
}

/** What takeover does to the entries (src/failover/takeover.ts): the peer's become this node's own. */
function promote(e: Engine): void {
  const t = e.conntrack.table;
  t.forEach((slot) => {
    if ((t.statusOf(slot) & CtStatus.REPLICATED) === 0) return;
    t.clearStatus(slot, CtStatus.REPLICATED);
    if ((t.tuples[t.tupleOffset(slot, 0) + 9] & 0xff) === 6) e.conntrack.tcp.setTolerant(t.tcp, slot);
  });
}

describe('sync of connection helpers', () => {
  it('the standby takes over an FTP session behind NAT: sequence adjustment and pending data connections', async () => {
    const [ta, tb] = LoopTransport.pair();
    const a = side(1, ta, ftpEngine());
    const b = side(2, tb, ftpEngine());
    a.sync.start();
    b.sync.start();
    try {
      let active = a.engine;
      const out = new EngineResult();
      const fw: Through = {
        pass(pkt: Buffer, inIf: number): Got | null {
          const v = active.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now: active.now() }, out);
          return v === Verdict.ACCEPT ? parse(out.replacement ?? pkt) : null;
        },
      };
      const ctl = connection(fw, { addr: C, port: 40000, ifIn: IN }, { addr: S, port: 21 });
      expect(ctl.send(0, 'PORT 10,0,0,5,156,65\r\n')?.text).toBe('PORT 198,51,100,10,156,65\r\n');
      ctl.send(1, '200 PORT command successful\r\n');
      ctl.send(0, 'PASV\r\n');
      ctl.send(1, '227 Entering Passive Mode (203,0,113,7,117,49).\r\n');
      expect(a.engine.conntrack.expectations.count).toBe(2);
      // b holds the control entry with its helper, its adjustment and both expectations.
      const bt = b.engine.conntrack.table;
      await until(() => b.engine.conntrack.expectations.count === 2 && b.engine.conntrack.seqadj.size === 1).catch((e: unknown) => {
        throw new Error(`b: ${b.engine.conntrack.expectations.count} expectations, ${b.engine.conntrack.seqadj.size} adjusted, ${bt.count} entries, refused ${b.sync.stats.entriesRefused}, helper refused ${b.engine.helperState.refused} (${String(e)})`);
      });
      let control = -1;
      bt.forEach((s) => { if ((bt.statusOf(s) & CtStatus.SEQ_ADJUST) !== 0) control = s; });
      expect(control).toBeGreaterThanOrEqual(0);
      expect(bt.statusOf(control) & CtStatus.REPLICATED).toBe(CtStatus.REPLICATED);

      // Takeover: b forwards from now on; a is the standby.
      demote(a.engine);
      promote(b.engine);
      active = b.engine;
      const retr = ctl.send(0, 'RETR f\r\n') as Got;
      expect(retr.text).toBe('RETR f\r\n'); // and its seq was adjusted: connection() checks the server's view
      ctl.send(1, '150 here it comes\r\n');
      ctl.send(0, '');
      expect(ctl.acks().a).toBe(ctl.acks().aNext);
      expect(ctl.acks().b).toBe(ctl.acks().bNext);
      // The active data connection (PORT): from the server's port 20 to the NAT address, to the client.
      const active1 = fw.pass(buildTcp({ src: S, dst: V, sport: 20, dport: 156 * 256 + 65, flags: SYN, seq: 5 }), OUT) as Got;
      expect(out.ctState).toBe(CtState.RELATED);
      expect([active1.dst, active1.dport]).toEqual([C, 156 * 256 + 65]);
      // The passive one (227): from the client, out through the NAT address.
      const passive = fw.pass(buildTcp({ src: C, dst: S, sport: 41000, dport: 117 * 256 + 49, flags: SYN, seq: 5 }), IN) as Got;
      expect(out.ctState).toBe(CtState.RELATED);
      expect(passive.src).toBe(V);
      // b, master now, tells a (the standby) that both expectations were used.
      await until(() => a.engine.conntrack.expectations.count === 0).catch(() => {
        throw new Error(`a still has ${a.engine.conntrack.expectations.count} expectations; b sent ${JSON.stringify(b.sync.stats.entriesSent)}, a applied ${JSON.stringify(a.sync.stats.entriesApplied)} kept ${a.sync.stats.entriesKeptLocal} refused ${a.sync.stats.entriesRefused}`);
      });
    } finally {
      await a.sync.close();
      await b.sync.close();
    }
  });

  it('the HELPER section round-trips through the codec; a reader that does not know it skips it by the entry length', () => {
    const e = ftpEngine();
    const fw: Through = {
      pass(pkt: Buffer, inIf: number): Got | null {
        const out = new EngineResult();
        return e.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now: e.now() }, out) === Verdict.ACCEPT ? parse(out.replacement ?? pkt) : null;
      },
    };
    const ctl = connection(fw, { addr: C, port: 40001, ifIn: IN }, { addr: S, port: 21 });
    ctl.send(0, 'PORT 10,0,0,5,156,66\r\n');
    const t = e.conntrack.table;
    let slot = -1;
    t.forEach((s) => (slot = s));
    const rec = new Uint32Array(ENTRY_RECORD_WORDS);
    const helper = new Uint32Array(HELPER_STATE_MAX_WORDS);
    t.exportEntry(slot, e.now(), rec, 0);
    const n = e.helperState.exportState(slot, e.now(), helper);
    expect(n).toBeGreaterThan(3);
    const buf = Buffer.alloc(1500);
    const end = encodeRecord(rec, 2, Section.TCP | Section.HELPER, buf, 0, helper);
    const dec = newDecodedEntry();
    const back = new Uint32Array(ENTRY_RECORD_WORDS);
    expect(decodeEntry(buf, 0, end, back, dec)).toBeNull();
    expect(dec.length).toBe(end);
    expect(Array.from(dec.helper.subarray(0, dec.helperWords))).toEqual(Array.from(helper.subarray(0, n)));
    // A reader of an earlier version (no HELPER bit known) reads the rest and skips it by length.
    const old = Buffer.from(buf.subarray(0, end));
    old[1] &= ~Section.HELPER; // as that reader sees its own sections: TCP, and the length
    expect(decodeEntry(old, 0, end, back, dec)).toBeNull();
    expect(dec.length).toBe(end);
    // A section that claims more than the entry holds is refused.
    const bad = Buffer.from(buf.subarray(0, end));
    const countAt = end - ((helper[1] & 1) !== 0 ? 24 : 0) - helper[2] * 28 - 4 + 2;
    bad[countAt] = 9;
    expect(decodeEntry(bad, 0, end, back, dec)).toMatch(/helper section/);
  });
});
