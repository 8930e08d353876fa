/**
 * Per-interface kernel settings the data plane needs while it runs, set at start and put back at
 * stop. accept_local: after SNAT to the node's own (outside virtual) address, a packet the verdict
 * hands back carries a local source address; without accept_local the kernel's source validation
 * (fib_validate_source) drops it as a martian on the inside interface. The same holds for replies
 * of a port forward to the node's own address.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const path = (iface: string, key: string) => `/proc/sys/net/ipv4/conf/${iface}/${key}`;

export class InterfaceSettings {
  /** What was there before, per file, to put back at stop. */
  readonly #saved = new Map<string, string>();

  /**
   * Set `key` to `value` on each interface, remembering the old values. A setting already at
   * `value` is left alone (not written, nothing to put back): where /proc/sys is read-only, as
   * in a container whose runtime set it, the node still starts.
   */
  apply(interfaces: readonly string[], key: string, value: string): void {
    for (const iface of interfaces) {
      const p = path(iface, key);
      const was = readFileSync(p, 'utf8').trim();
      if (was === value) continue;
      if (!this.#saved.has(p)) this.#saved.set(p, was);
      writeFileSync(p, value);
    }
  }

  /** Put every changed setting back; returns the errors (an interface may be gone by now). */
  restore(): string[] {
    const errors: string[] = [];
    for (const [p, v] of this.#saved) {
      try {
        writeFileSync(p, v);
      } catch (e) {
        errors.push(`${p}: ${String(e)}`);
      }
    }
    this.#saved.clear();
    return errors;
  }
}
