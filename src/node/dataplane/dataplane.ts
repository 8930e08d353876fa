/**
 * The data plane: kernel rules that send the data interfaces' traffic to an NFQUEUE, and the loop
 * that runs every queued packet through the engine and gives the kernel its verdict.
 *
 * Per batch (the binding hands over every packet a read found, up to its slots, in one call): one
 * clock read; per packet meta from the kernel's indev/outdev/mark -> Engine.process on the payload
 * where it lies in the binding's arena -> the verdict written into the shared verdict array:
 * - accept, with the rewritten bytes when the engine changed them (NAT), with the mark when set;
 * - drop;
 * - REJECT (the engine drops and emits an answer): the answer replaces the offending packet and is
 *   accepted. The kernel re-routes the new bytes (we are in raw PREROUTING, before routing), so the
 *   TCP reset or ICMP unreachable goes back out towards the sender, with the address of the peer it
 *   was meant for as source, as ipt_REJECT does. No raw socket needed (node has none; the binding
 *   cannot inject). One answer per packet: more are counted as emitDropped.
 *
 * Outdev: in raw PREROUTING routing has not happened yet, so the kernel reports outdev 0 and rules
 * on the output interface cannot match; see the dataplane README.
 */
import { Engine, EngineResult, type PacketMeta } from '../engine/index.js';
import {
  BoundQueue, D_FLAGS, DESC_INTS, VERD_INTS, D_INDEV, D_LENGTH, D_MARK, D_OFFSET, D_OUTDEV, NF_ACCEPT, NF_DROP,
  V_FLAGS, V_LENGTH, V_MARK, V_OFFSET, V_VERDICT, VF_BYTES, VF_MARK,
} from './binding.js';
import { DataplaneError } from './errors.js';
import { resolveDataplaneOptions, type DataplaneOptions, type ResolvedDataplaneOptions } from './options.js';
import { readQueueState } from './queue-proc.js';
import { installRules, removeRules, type Family } from './rules.js';
import { RouteTable } from './routes.js';
import { InterfaceSettings } from './sysctl.js';
import { DataplaneCounters, type DataplaneStats } from './stats.js';

// Engine verdict code (Verdict.ACCEPT in the filter).
const V_ACCEPT = 1;

export interface DataplaneHooks {
  /** Called when processing a packet threw (a bug in the engine): the packet got the fail verdict. */
  onEngineError?: (err: unknown) => void;
  /** A periodic refresh of the routing table failed (the previous routes stay in use). */
  onRouteError?: (err: unknown) => void;
}

export class Dataplane {
  readonly options: ResolvedDataplaneOptions;
  readonly #engine: Engine;
  readonly #routes = new RouteTable();
  readonly #settings = new InterfaceSettings();
  readonly #counters = new DataplaneCounters();
  readonly #meta: PacketMeta = { inIf: 0, outIf: 0, mark: 0, now: 0 };
  readonly #out = new EngineResult();
  readonly #hooks: DataplaneHooks;
  #queue: BoundQueue | null = null;
  #running = false;
  #families: Family[] = [];

  constructor(engine: Engine, opts: DataplaneOptions, hooks: DataplaneHooks = {}) {
    this.#engine = engine;
    this.options = resolveDataplaneOptions(opts);
    this.#hooks = hooks;
  }

  get running(): boolean {
    return this.#running;
  }

  /**
   * Bind the queue, then install the rules (in that order, so no packet is queued to nobody when
   * fail-closed). Replaces leftovers of a crashed run. Throws DataplaneError; on failure nothing
   * of ours stays installed.
   */
  async start(): Promise<void> {
    if (this.#running) throw new DataplaneError('DP_STATE', 'the data plane is running already: stop() it first');
    if (process.getuid?.() !== 0) {
      throw new DataplaneError('DP_NOT_ROOT', 'the data plane installs iptables rules and binds an NFQUEUE: run the node as root (CAP_NET_ADMIN)');
    }
    const o = this.options;
    // The output interface the kernel will route to (NFQUEUE in PREROUTING reports none).
    try {
      await this.#routes.start(5000, (e) => this.#hooks.onRouteError?.(e));
    } catch (e) {
      throw new DataplaneError('DP_ROUTES', `cannot read the routing table with ip -j route (${String(e)}): is iproute2 installed?`);
    }
    this.#engine.setRouteLookup(this.#routes);
    // Packets SNATed to this node's own address come back from the queue with a local source.
    try {
      this.#settings.apply(o.dataInterfaces, 'accept_local', '1');
    } catch (e) {
      throw new DataplaneError('DP_SYSCTL', `cannot set accept_local on the data interfaces (${String(e)}): do they exist?`);
    }
    this.#queue = new BoundQueue({ queueNum: o.queueNum, socketBuffer: o.socketBuffer, failOpen: o.failOpen }, this.#onBatch);
    this.#families = o.ipv6 ? [4, 6] : [4];
    try {
      for (const f of this.#families) installRules(f, o);
    } catch (e) {
      this.#detach();
      this.#removeQuietly(e);
      throw e;
    }
    this.#running = true;
    await Promise.resolve();
  }

  /** Remove the rules, then unbind the queue (the kernel drops packets still in it). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    let first: unknown = null;
    for (const f of this.#families) {
      try {
        removeRules(f, this.options.chain);
      } catch (e) {
        first ??= e;
      }
    }
    this.#detach();
    this.#routes.stop();
    for (const err of this.#settings.restore()) first ??= new DataplaneError('DP_SYSCTL', `could not restore ${err}`);
    await Promise.resolve();
    if (first) throw first;
  }

  stats(): DataplaneStats {
    let kernel: DataplaneStats['kernel'];
    try {
      kernel = readQueueState(this.options.queueNum);
    } catch {
      // Unreadable /proc (not ENOENT) means no kernel figures this time; the counters still count.
      kernel = null;
    }
    return { running: this.#running, queueNum: this.options.queueNum, failOpen: this.options.failOpen, counters: this.#counters, kernel, binding: this.#queue?.counters() ?? null };
  }

  #detach(): void {
    this.#queue?.close();
    this.#queue = null;
  }

  #removeQuietly(cause: unknown): void {
    for (const f of this.#families) {
      try {
        removeRules(f, this.options.chain);
      } catch (e) {
        // Start failed already with `cause`; a failed cleanup is reported beside it, not instead.
        console.error(`dataplane: cleanup after failed start (${String(cause)}) failed too: ${String(e)}`);
      }
    }
  }

  readonly #onBatch = (n: number): void => {
    const c = this.#counters;
    const q = this.#queue as BoundQueue;
    const arena = q.arena;
    const desc = q.desc;
    const ver = q.verdicts;
    c.reads++;
    const meta = this.#meta;
    meta.now = this.#engine.now();
    const out = this.#out;
    for (let i = 0; i < n; i++) {
      const d = i * DESC_INTS;
      const w = i * VERD_INTS;
      const off = desc[d + D_OFFSET];
      const len = desc[d + D_LENGTH];
      c.received++;
      c.receivedBytes += len;
      // Cut short (longer than the copy range; the binding counts it): not judged, so it keeps
      // the binding's default, the fail verdict, as do packets the engine throws on.
      if (desc[d + D_FLAGS] !== 0) continue;
      meta.inIf = desc[d + D_INDEV];
      meta.outIf = desc[d + D_OUTDEV];
      meta.mark = desc[d + D_MARK] >>> 0;
      let v: number;
      try {
        v = this.#engine.process(arena, off, len, meta, out);
      } catch (e) {
        c.engineErrors++;
        this.#hooks.onEngineError?.(e);
        continue;
      }
      if (v === V_ACCEPT) {
        let flags = 0;
        const r = out.replacement;
        if (r !== null) {
          // A helper resized the packet (an FTP command rewritten for NAT): its new bytes go out
          // from the packet's replacement slot.
          if (r.length > q.emitSize) {
            c.replaceTooLarge++;
            ver[w + V_VERDICT] = NF_DROP;
            c.dropped++;
            continue;
          }
          const eo = q.emitOffset(i);
          arena.set(r, eo);
          c.replaced++;
          ver[w + V_OFFSET] = eo;
          ver[w + V_LENGTH] = r.length;
          flags = VF_BYTES;
        } else if (out.modified) {
          c.modified++;
          flags = VF_BYTES;
          ver[w + V_OFFSET] = off;
          ver[w + V_LENGTH] = len;
        }
        c.accepted++;
        if (out.markChanged) {
          c.markSet++;
          flags |= VF_MARK;
          ver[w + V_MARK] = out.mark | 0;
        }
        ver[w + V_VERDICT] = NF_ACCEPT;
        ver[w + V_FLAGS] = flags;
        continue;
      }
      c.dropped++;
      const emits = out.emit.length;
      if (emits !== 0 && out.emit[0].length <= q.emitSize) {
        // The answer replaces the offending packet, accepted (see the top of the file).
        const e = out.emit[0];
        const eo = q.emitOffset(i);
        arena.set(e, eo);
        c.emitted++;
        c.emitDropped += emits - 1;
        ver[w + V_VERDICT] = NF_ACCEPT;
        ver[w + V_FLAGS] = VF_BYTES;
        ver[w + V_OFFSET] = eo;
        ver[w + V_LENGTH] = e.length;
        continue;
      }
      c.emitDropped += emits;
      ver[w + V_VERDICT] = NF_DROP;
    }
  };
}
