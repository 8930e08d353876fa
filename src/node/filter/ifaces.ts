/**
 * Interface matching by kernel ifindex. Packets carry ifindexes; rules name interfaces (with
 * iptables' "eth+" prefix wildcard). The first packet from an ifindex asks the injected resolver for
 * its name once and caches, per ruleset, a row saying which of the ruleset's patterns it matches;
 * later packets read one byte. An ifindex the resolver does not know is retried once a second
 * (interfaces come and go: ppp, veth); call `invalidate()` when links are renamed or ifindexes reused.
 */
import type { IfacePattern } from './values.js';

/** Name of the interface with this kernel ifindex, or undefined when there is none. */
export type InterfaceResolver = (ifindex: number) => string | undefined;

const RETRY_MS = 1000;

export class InterfaceMatcher {
  private readonly rows = new Map<number, Uint8Array>();
  private readonly retryAt = new Map<number, number>();
  private readonly unresolved: number;

  /** `patterns[id]` lists the alternatives of pattern `id` (a rule's `in: [eth0, wlan+]`). */
  constructor(
    private readonly resolver: InterfaceResolver | undefined,
    private readonly patterns: IfacePattern[][],
  ) {
    this.unresolved = patterns.length;
  }

  /** Whether interface `ifindex` matches pattern `pat`. 0 means no interface: never matches. */
  matches(ifindex: number, pat: number, now: number): boolean {
    if (ifindex === 0) return false;
    let row = this.rows.get(ifindex);
    if (row === undefined || (row[this.unresolved] === 1 && now >= (this.retryAt.get(ifindex) ?? 0))) {
      row = this.resolve(ifindex, now);
    }
    return row[pat] === 1;
  }

  /** Forgets every cached name (after a link rename or ifindex reuse). */
  invalidate(): void {
    this.rows.clear();
    this.retryAt.clear();
  }

  private resolve(ifindex: number, now: number): Uint8Array {
    const row = new Uint8Array(this.patterns.length + 1);
    const name = this.resolver ? this.resolver(ifindex) : undefined;
    if (name === undefined) {
      row[this.unresolved] = 1;
      this.retryAt.set(ifindex, now + RETRY_MS);
    } else {
      for (let id = 0; id < this.patterns.length; id++) {
        // As xt's ifname compare: exact name, or prefix when the rule ends with "+".
        row[id] = this.patterns[id].some((p) => (p.wildcard ? name.startsWith(p.name) : name === p.name)) ? 1 : 0;
      }
    }
    this.rows.set(ifindex, row);
    return row;
  }
}
