/**
 * Conntrack entries counted by protocol and state, walking the table once at scrape time (never
 * on the packet path). TCP entries are labelled with the tracker's state (ESTABLISHED,
 * TIME_WAIT...); other protocols with UNREPLIED / REPLIED / ASSURED, as `conntrack -L` flags them.
 */
import { CtStatus, protoName, tcpStateNames, type ConntrackTable } from '../conntrack/index.js';

const PROTO_TCP = 6;

export interface CensusRow {
  proto: string;
  state: string;
  count: number;
}

export function conntrackCensus(t: ConntrackTable): CensusRow[] {
  const counts = new Map<string, CensusRow>();
  t.forEach((slot) => {
    const proto = t.tuples[t.tupleOffset(slot, 0) + 9] & 0xff;
    let state: string;
    if (proto === PROTO_TCP) {
      state = tcpStateNames[t.tcp.stateOf(slot)] ?? String(t.tcp.stateOf(slot));
    } else {
      const st = t.statusOf(slot);
      state = (st & CtStatus.ASSURED) !== 0 ? 'ASSURED' : (st & CtStatus.SEEN_REPLY) !== 0 ? 'REPLIED' : 'UNREPLIED';
    }
    const name = protoName(proto);
    const key = `${name}/${state}`;
    const row = counts.get(key);
    if (row) row.count++;
    else counts.set(key, { proto: name, state, count: 1 });
  });
  return [...counts.values()];
}
