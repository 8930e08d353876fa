/**
 * A helper'd entry's state beyond its record, as words that state sync carries with the entry
 * (src/sync/entry-codec.ts, section HELPER) so that a standby taking over continues a rewritten
 * FTP control connection and lets in the data connections it announced:
 *
 *   [0] helper id   [1] flags (bit 0: sequence adjustment follows)   [2] expectations n
 *   [3..8] sequence adjustment, when flagged: position (dir 0, 1), offset before (0, 1), after (0, 1)
 *   then n x EXPECT_WORDS: expected tuple, its ports mask, ms left, saved port, dir << 8 | flags
 *
 * The line readers' partial lines are not carried: after a takeover a helper reads on from the
 * next segment (a command cut by the takeover is missed; its client repeats it).
 */
import { CtStatus, type ConntrackTable } from '../table.js';
import { EXPECT_WORDS, ExpectationLimitError, type ExpectationTable } from '../expect.js';
import type { SeqAdjustments } from '../seqadj.js';
import { TUPLE_WORDS, TW_PORTS } from '../tuple.js';
import { CT_HELPER_MASK, CT_HELPER_SHIFT, helperNames } from './ids.js';

/** Expectations carried per entry at most (ExpectationTable's default per master). */
export const HELPER_STATE_MAX_EXPECT = 8;
export const HELPER_STATE_HEAD_WORDS = 3;
export const HELPER_STATE_SEQADJ_WORDS = 6;
export const HELPER_STATE_MAX_WORDS = HELPER_STATE_HEAD_WORDS + HELPER_STATE_SEQADJ_WORDS + HELPER_STATE_MAX_EXPECT * EXPECT_WORDS;
export const HelperStateFlag = { SEQ_ADJUST: 1 } as const;

/** What state sync needs: the words of an entry's helper state, and taking them in. */
export interface HelperStateIO {
  /** Write the state of the entry at `slot` (it has a helper) to out; returns the words, 0 for none. */
  exportState(slot: number, now: number, out: Uint32Array): number;
  /** Make `words[0..n)` the state of the entry at `slot` (just imported). Returns false when refused. */
  importState(slot: number, words: Uint32Array, n: number, now: number): boolean;
}

export class HelperState implements HelperStateIO {
  readonly #mask = new Uint32Array(TUPLE_WORDS);
  readonly #tuple = new Uint32Array(TUPLE_WORDS);
  /** Imported states refused (unknown helper, inconsistent counts), and expectations that found no room. */
  refused = 0;
  expectLimit = 0;

  constructor(readonly table: ConntrackTable, readonly expectations: ExpectationTable, readonly seqadj: SeqAdjustments) {}

  exportState(slot: number, now: number, out: Uint32Array): number {
    const t = this.table;
    const st = t.statusOf(slot);
    const id = (st & CT_HELPER_MASK) >>> CT_HELPER_SHIFT;
    if (id === 0) return 0;
    out[0] = id;
    let o = HELPER_STATE_HEAD_WORDS;
    const a = (st & CtStatus.SEQ_ADJUST) !== 0 ? this.seqadj.get(slot, t.id[slot]) : undefined;
    out[1] = 0;
    if (a !== undefined) {
      out[1] = HelperStateFlag.SEQ_ADJUST;
      out[o] = a.pos[0];
      out[o + 1] = a.pos[1];
      out[o + 2] = a.before[0] >>> 0;
      out[o + 3] = a.before[1] >>> 0;
      out[o + 4] = a.after[0] >>> 0;
      out[o + 5] = a.after[1] >>> 0;
      o += HELPER_STATE_SEQADJ_WORDS;
    }
    const n = this.expectations.exportMaster(slot, t.id[slot], now, out, o, HELPER_STATE_MAX_EXPECT);
    out[2] = n;
    return o + n * EXPECT_WORDS;
  }

  importState(slot: number, w: Uint32Array, n: number, now: number): boolean {
    const t = this.table;
    const id = w[0];
    const flags = w[1];
    const count = w[2];
    const seq = (flags & HelperStateFlag.SEQ_ADJUST) !== 0;
    const words = HELPER_STATE_HEAD_WORDS + (seq ? HELPER_STATE_SEQADJ_WORDS : 0) + count * EXPECT_WORDS;
    if (n < HELPER_STATE_HEAD_WORDS || id === 0 || id >= helperNames.length || count > HELPER_STATE_MAX_EXPECT || words !== n) {
      this.refused++;
      return false;
    }
    const entryId = t.id[slot];
    t.clearStatus(slot, CT_HELPER_MASK | CtStatus.SEQ_ADJUST);
    t.addStatus(slot, id << CT_HELPER_SHIFT);
    let o = HELPER_STATE_HEAD_WORDS;
    if (seq) {
      this.seqadj.set(slot, { entryId, pos: [w[o], w[o + 1]], before: [w[o + 2] | 0, w[o + 3] | 0], after: [w[o + 4] | 0, w[o + 5] | 0] });
      t.addStatus(slot, CtStatus.SEQ_ADJUST);
      o += HELPER_STATE_SEQADJ_WORDS;
    } else this.seqadj.delete(slot);
    // The peer's list replaces ours: used, expired or new expectations alike.
    this.expectations.removeMaster(slot);
    const tuple = this.#tuple;
    const mask = this.#mask;
    for (let i = 0; i < count; i++, o += EXPECT_WORDS) {
      for (let k = 0; k < TUPLE_WORDS; k++) {
        tuple[k] = w[o + k];
        mask[k] = 0xffffffff;
      }
      mask[TW_PORTS] = w[o + TUPLE_WORDS];
      const saved = w[o + TUPLE_WORDS + 2];
      const df = w[o + TUPLE_WORDS + 3];
      try {
        this.expectations.add(
          { masterSlot: slot, masterId: entryId, tuple, mask, timeoutMs: w[o + TUPLE_WORDS + 1], flags: df & 0xff, dir: (df >>> 8) & 1, savedPort: saved === 0xffffffff ? -1 : saved & 0xffff },
          now,
        );
      } catch (e) {
        if (!(e instanceof ExpectationLimitError)) throw e;
        this.expectLimit++;
      }
    }
    return true;
  }
}
