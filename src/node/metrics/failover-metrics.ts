/**
 * Failover metrics (twinwall_failover_*), registered when the node has a failover section: the
 * role as a gauge per role (1 for the current one: "no master" and "two masters" are sums over
 * the pair), the priority, transitions by the role entered, and the advert counters, read at
 * scrape time from what the node last learned of its election thread.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { AdvertDrop, roleNames } from '../../failover/index.js';

/** What the node knows of its election (daemon/failover-link.ts keeps it current). */
export interface FailoverMetricsView {
  role: string;
  priority: number;
  /** Transitions so far, by the role entered. */
  transitions: Record<string, number>;
  advertsSent: number;
  advertsReceived: number;
  drops: Record<string, number>;
  /** As master, the adverts' worst lateness (ms) and the times it was over one interval late. */
  advertLateMaxMs: number;
  advertsLate: number;
}

const dropReasons = Object.values(AdvertDrop);

export function registerFailoverMetrics(reg: Registry, view: () => FailoverMetricsView | null): void {
  new Gauge({
    name: 'twinwall_failover_role', help: 'The election role of this node: 1 for the current one.', labelNames: ['role'], registers: [reg],
    collect() {
      const v = view();
      for (const r of roleNames) this.set({ role: r }, v !== null && v.role === r ? 1 : 0);
    },
  });
  new Gauge({
    name: 'twinwall_failover_priority', help: 'The priority this node advertises (configured, less health penalties).', registers: [reg],
    collect() {
      this.set(view()?.priority ?? 0);
    },
  });
  const counter = (name: string, help: string, labelNames: string[], read: (v: FailoverMetricsView) => [Record<string, string>, number][]): void => {
    new Counter({
      name, help, labelNames, registers: [reg],
      collect() {
        this.reset();
        const v = view();
        if (v) for (const [labels, n] of read(v)) this.inc(labels, n);
      },
    });
  };
  counter('twinwall_failover_transitions_total', 'Election transitions, by the role entered.', ['to'], (v) => roleNames.map((to) => [{ to }, v.transitions[to] ?? 0]));
  counter('twinwall_failover_adverts_sent_total', 'Election adverts sent (each goes out on every link).', [], (v) => [[{}, v.advertsSent]]);
  counter('twinwall_failover_adverts_received_total', 'Election adverts accepted.', [], (v) => [[{}, v.advertsReceived]]);
  counter('twinwall_failover_adverts_dropped_total', 'Election datagrams dropped, by reason (duplicates are the copies of each advert from the other links).', ['reason'],
    (v) => dropReasons.map((reason) => [{ reason }, v.drops[reason] ?? 0]));
  counter('twinwall_failover_adverts_late_total', 'Adverts this node sent as master over one advert interval late (its advert thread was held; over three, it yields to the backup).', [], (v) => [[{}, v.advertsLate]]);
  new Gauge({
    name: 'twinwall_failover_advert_late_max_seconds', help: 'The worst lateness of the adverts of this node as master since start: how long its advert thread was held.', registers: [reg],
    collect() {
      this.set((view()?.advertLateMaxMs ?? 0) / 1000);
    },
  });
}
