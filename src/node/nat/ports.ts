/**
 * Outside ports of one outside address and protocol: which are taken, by whom, and how many
 * connections use each. Endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): an inside
 * address:port keeps one outside port for every destination while any connection uses it, so
 * the pool maps the inside endpoint to its port and counts the connections on that port.
 *
 * Allocation is O(1)-ish and never scans the conntrack table: the preferred port (the source port
 * itself, as Linux's nf_nat keeps it when unique) is one bit test; otherwise the bitmap is walked
 * from there a 32-port word at a time, full words skipped. Numbers only: no per-call allocation.
 */

const WORDS = 65536 / 32;

export class PortPool {
  /** Host-order IPv4 address the pool's ports belong to. */
  readonly address: number;
  readonly proto: number;
  /** Ports in use now (connections share them: see refs). */
  inUse = 0;
  /** Ports handed out since start (one per inside endpoint mapping made). */
  allocations = 0;
  /** New connections dropped because no port of their rule's range was free. */
  exhausted = 0;
  readonly #bits = new Uint32Array(WORDS);
  readonly #refs = new Uint32Array(65536);
  /** Inside key (address * 65536 + port) owning each taken port. */
  readonly #owner = new Float64Array(65536);
  readonly #byInside = new Map<number, number>();

  constructor(address: number, proto: number) {
    this.address = address >>> 0;
    this.proto = proto;
  }

  /** Inside endpoint key: exact in a double (48 bits). */
  static key(insideAddress: number, insidePort: number): number {
    return (insideAddress >>> 0) * 65536 + (insidePort & 0xffff);
  }

  /** Outside port already mapped for this inside endpoint, or -1. */
  mapped(key: number): number {
    const p = this.#byInside.get(key);
    return p === undefined ? -1 : p;
  }

  isFree(port: number): boolean {
    return (this.#bits[port >>> 5] & (1 << (port & 31))) === 0;
  }

  /** Connections using `port`. */
  refsOf(port: number): number {
    return this.#refs[port];
  }

  /**
   * A free port in [lo, hi]: `want` when it is in range and free, else the next free one after
   * it (wrapping), or -1 when every port of the range is taken.
   */
  findFree(want: number, lo: number, hi: number): number {
    const bits = this.#bits;
    let p = want >= lo && want <= hi ? want : lo;
    if ((bits[p >>> 5] & (1 << (p & 31))) === 0) return p;
    const n = hi - lo + 1;
    for (let i = 1; i < n; i++) {
      p = p >= hi ? lo : p + 1;
      const w = bits[p >>> 5];
      // A full word aligned at p, inside the range: skip its 32 ports at once.
      if (w === 0xffffffff && (p & 31) === 0 && p + 31 <= hi) {
        p += 31;
        i += 31;
        continue;
      }
      if ((w & (1 << (p & 31))) === 0) return p;
    }
    return -1;
  }

  /** Take a free port for an inside endpoint, with its first connection. */
  claim(key: number, port: number): void {
    this.#bits[port >>> 5] |= 1 << (port & 31);
    this.#refs[port] = 1;
    this.#owner[port] = key;
    this.#byInside.set(key, port);
    this.inUse++;
    this.allocations++;
  }

  /** One more connection on a mapped port. */
  ref(port: number): void {
    this.#refs[port]++;
  }

  /** Owner key of a taken port (-1 when free). */
  ownerOf(port: number): number {
    return this.isFree(port) ? -1 : this.#owner[port];
  }

  /** A connection on `port` ended: the last one frees the port and its mapping. */
  release(port: number): void {
    if (this.#refs[port] === 0) return;
    if (--this.#refs[port] !== 0) return;
    this.#bits[port >>> 5] &= ~(1 << (port & 31));
    this.#byInside.delete(this.#owner[port]);
    this.inUse--;
  }

  /** Mappings held (inside endpoints), for tests and invariants. */
  get mappings(): number {
    return this.#byInside.size;
  }
}
