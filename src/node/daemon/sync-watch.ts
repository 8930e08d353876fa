/**
 * Sync events for the node's log, found by polling SyncNode's figures from the node's tick (once
 * a second), so the packet path and the sync hot paths do nothing for it:
 *   info  sync peer first contact / sync peer restarted / sync resync completed / contact restored
 *   warn  sync peer lost (no contact for SYNC_PEER_LOST_MS), no peer heard since start, a resync
 *         that ended short (entries did not fit),
 *         authentication failures (keys differ), our own node id heard (the peer has the same id).
 */
import type { Logger } from 'pino';
import { RecvDrop, type SyncNode } from '../../sync/index.js';

/** No authenticated datagram from the peer for this long: it is lost (ALIVE comes every 200 ms). */
export const SYNC_PEER_LOST_MS = 3000;

export class SyncWatch {
  #peer = '';
  #lost = false;
  #quietWarned = false;
  #resyncs = 0;
  #swept = 0;
  #short = 0;
  #authFailures = 0;
  #own = 0;

  constructor(
    readonly sync: SyncNode,
    readonly log: Logger,
    /** When sync started (engine clock, ms). */
    readonly startedAt: number,
    readonly lostMs = SYNC_PEER_LOST_MS,
  ) {}

  poll(now: number): void {
    const st = this.sync.stats;
    const p = this.sync.peer;
    if (p !== null) {
      const key = `${p.id}/${p.epoch}`;
      if (key !== this.#peer) {
        const fields = { peer: p.id, peerEpoch: new Date(p.epoch).toISOString() };
        const was = this.#peer === '' ? null : Number(this.#peer.split('/')[0]);
        if (was === null) this.log.info(fields, 'sync peer first contact; resync requested');
        else if (was === p.id) this.log.info(fields, 'sync peer restarted (new epoch); resync requested');
        else this.log.warn({ ...fields, previousPeer: was }, 'sync peer changed id; resync requested');
        this.#peer = key;
        this.#lost = false;
      }
      const silentMs = Math.max(0, now - p.lastContact);
      if (!this.#lost && silentMs >= this.lostMs) {
        this.#lost = true;
        this.log.warn({ peer: p.id, silentMs: Math.round(silentMs) }, `sync peer lost: no contact for ${this.lostMs / 1000} s`);
      } else if (this.#lost && silentMs < this.lostMs) {
        this.#lost = false;
        this.log.info({ peer: p.id }, 'sync peer contact restored');
      }
    } else if (!this.#quietWarned && now - this.startedAt >= this.lostMs) {
      this.#quietWarned = true;
      this.log.warn({ waitedMs: Math.round(now - this.startedAt) },
        'sync: no peer heard since start; is it running, on the same group or peer address and port, with the same keys?');
    }
    if (st.resyncsCompleted > this.#resyncs) {
      const fields = { peer: p?.id, completed: st.resyncsCompleted, swept: st.resyncSwept - this.#swept };
      if (st.resyncsShort > this.#short) {
        this.log.warn({ ...fields, tableFull: st.entriesTableFull, refused: st.entriesRefused },
          'sync resync completed SHORT: entries of the peer did not fit (table full or evicted) or were refused; this node does not hold the peer\'s whole table (raise conntrack.maxEntries to the peer\'s)');
      } else {
        this.log.info(fields, "sync resync completed: this node holds the peer's whole table");
      }
      this.#resyncs = st.resyncsCompleted;
      this.#short = st.resyncsShort;
      this.#swept = st.resyncSwept;
    }
    if (st.authFailures > this.#authFailures) {
      this.log.warn({ failures: st.authFailures - this.#authFailures, total: st.authFailures },
        'sync datagrams failed authentication (unknown key id or bad MAC): are the same keys configured on both nodes?');
      this.#authFailures = st.authFailures;
    }
    const own = st.drops[RecvDrop.OWN] ?? 0;
    if (own > this.#own) {
      this.log.warn({ datagrams: own - this.#own }, "sync datagrams carry this node's own id: give each node of the pair its own sync.nodeId");
      this.#own = own;
    }
  }
}
