/**
 * A coarse timer wheel for entry timeouts, in the spirit of undici's timers: one list per tick,
 * not one timer per entry. Refreshing a timeout on the packet path only writes the new deadline
 * (lazy); when the wheel reaches an entry whose deadline moved on, it relinks it into the slot of
 * the new deadline. So the per-packet cost is one Float64Array store.
 *
 * Entries are numbered slots (the conntrack table's); links live in Int32Arrays.
 */

export interface TimerExpiry {
  /** Called for each slot whose deadline has passed; the slot is already unlinked. */
  expire(slot: number, now: number): void;
}

export class TimerWheel {
  readonly tickMs: number;
  readonly size: number;
  readonly #mask: number;
  #heads: Int32Array;
  #next: Int32Array;
  #prev: Int32Array;
  /** Slot's bucket, -1 when not linked. */
  #bucketOf: Int32Array;
  /**
   * Deadlines (absolute ms, the caller's clock) live in f64[slot * stride + offset]: by default an
   * array of the wheel's own; the conntrack table points it into its entry records instead, so the
   * per-packet refresh writes the cache line the packet already touched.
   */
  #f64: Float64Array;
  #stride = 1;
  #offset = 0;
  /**
   * The last tick advanced to; below 0 before the first advance. -Infinity, not -1: a tick of an
   * epoch clock (ms since 1970 / 250) is beyond V8's small integers, and a field that starts as one
   * and then holds a double changes the wheel's hidden class, which throws away the optimised code
   * of everything that uses a wheel (the table's import and confirm) at the first advance: on a
   * restarted standby, early in its bulk resync, which then ran unoptimised for ~100 ms.
   */
  #lastTick = -Infinity;
  /** Before the first advance: the earliest tick linked, where the first advance starts. */
  #firstTick = Infinity;
  #linked = 0;

  constructor(capacity: number, tickMs = 250, size = 4096) {
    if ((size & (size - 1)) !== 0) throw new RangeError(`timer wheel size must be a power of two, got ${size}`);
    this.tickMs = tickMs;
    this.size = size;
    this.#mask = size - 1;
    this.#heads = new Int32Array(size).fill(-1);
    this.#next = new Int32Array(capacity).fill(-1);
    this.#prev = new Int32Array(capacity).fill(-1);
    this.#bucketOf = new Int32Array(capacity).fill(-1);
    this.#f64 = new Float64Array(capacity);
  }

  /** Keep deadlines in f64[slot * stride + offset] (after growing the wheel, point it again). */
  useDeadlineStorage(f64: Float64Array, stride: number, offset: number): void {
    this.#f64 = f64;
    this.#stride = stride;
    this.#offset = offset;
  }

  deadlineOf(slot: number): number {
    return this.#f64[slot * this.#stride + this.#offset];
  }

  get byteLength(): number {
    return this.#heads.byteLength + this.#next.byteLength * 3 + (this.#stride === 1 ? this.#f64.byteLength : 0);
  }

  get linked(): number {
    return this.#linked;
  }

  grow(capacity: number): void {
    const old = this.#next.length;
    if (capacity <= old) return;
    const g = (a: Int32Array): Int32Array => {
      const n = new Int32Array(capacity).fill(-1);
      n.set(a);
      return n;
    };
    this.#next = g(this.#next);
    this.#prev = g(this.#prev);
    this.#bucketOf = g(this.#bucketOf);
    if (this.#stride === 1) {
      const d = new Float64Array(capacity);
      d.set(this.#f64);
      this.#f64 = d;
    }
  }

  /** Link a slot with its deadline. */
  insert(slot: number, deadline: number): void {
    this.#f64[slot * this.#stride + this.#offset] = deadline;
    this.#link(slot, deadline);
  }

  /**
   * Set a linked slot's deadline. Extending it only stores the number (the wheel relinks lazily
   * when it reaches the old bucket); shortening it below the next visit of its bucket relinks it
   * now, so a connection moving to CLOSE or TIME_WAIT expires on time.
   */
  update(slot: number, deadline: number): void {
    const at = slot * this.#stride + this.#offset;
    const old = this.#f64[at];
    this.#f64[at] = deadline;
    if (deadline >= old) return;
    const b = this.#bucketOf[slot];
    if (b < 0) return;
    if (this.#lastTick < 0) {
      // Before the first advance (a node that just started, its peer's table coming in): the
      // bucket's tick is not known, so relink. Left where it was, a 5-day ESTABLISHED deadline
      // shortened to CLOSE would wait for its bucket's turn, up to a revolution (17 min).
      this.remove(slot);
      this.#link(slot, deadline);
      return;
    }
    const nextVisit = this.#lastTick + 1 + ((b - this.#lastTick - 1) & this.#mask);
    if (Math.floor(deadline / this.tickMs) < nextVisit) {
      this.remove(slot);
      this.#link(slot, deadline);
    }
  }

  /** Unlink a slot (entry destroyed). */
  remove(slot: number): void {
    const b = this.#bucketOf[slot];
    if (b < 0) return;
    const p = this.#prev[slot];
    const n = this.#next[slot];
    if (p >= 0) this.#next[p] = n;
    else this.#heads[b] = n;
    if (n >= 0) this.#prev[n] = p;
    this.#next[slot] = -1;
    this.#prev[slot] = -1;
    this.#bucketOf[slot] = -1;
    this.#linked--;
  }

  #link(slot: number, deadline: number): void {
    let tick = Math.floor(deadline / this.tickMs);
    if (this.#lastTick < 0 && tick < this.#firstTick) this.#firstTick = tick;
    // Never link into a bucket the wheel already passed in this revolution.
    if (tick <= this.#lastTick) tick = this.#lastTick + 1;
    const b = tick & this.#mask;
    const h = this.#heads[b];
    this.#next[slot] = h;
    this.#prev[slot] = -1;
    if (h >= 0) this.#prev[h] = slot;
    this.#heads[b] = slot;
    this.#bucketOf[slot] = b;
    this.#linked++;
  }

  /**
   * Move the wheel to `now`, expiring what is due. Returns the number of expired slots.
   * Cheap when no tick boundary was crossed, so it can run on every packet.
   */
  advance(now: number, sink: TimerExpiry): number {
    const nowTick = Math.floor(now / this.tickMs);
    if (this.#lastTick < 0) {
      this.#lastTick = Math.min(nowTick, this.#firstTick) - 1;
    }
    if (nowTick <= this.#lastTick) return 0;
    let expired = 0;
    // Past one revolution every bucket has been visited once: no need to loop further.
    const from = nowTick - this.#lastTick > this.size ? nowTick - this.size + 1 : this.#lastTick + 1;
    for (let t = from; t <= nowTick; t++) {
      this.#lastTick = t;
      const b = t & this.#mask;
      let slot = this.#heads[b];
      this.#heads[b] = -1;
      while (slot >= 0) {
        const next = this.#next[slot];
        this.#next[slot] = -1;
        this.#prev[slot] = -1;
        this.#bucketOf[slot] = -1;
        this.#linked--;
        const d = this.#f64[slot * this.#stride + this.#offset];
        if (d <= now) {
          expired++;
          sink.expire(slot, now);
        } else {
          this.#link(slot, d);
        }
        slot = next;
      }
    }
    this.#lastTick = nowTick;
    return expired;
  }
}
