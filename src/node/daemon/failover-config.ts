/**
 * The config's `failover` section: the election and the virtual addresses (src/failover). Needs
 * the sync section: the adverts are signed with the sync keys and carry the sync node id.
 *
 *   failover:
 *     priority: 200               # 1..254, the higher is master
 *     advertIntervalMs: 100       # 1..65535, default 100
 *     preempt: true               # default true
 *     preemptDelayMs: 0
 *     groupId: 1                  # the pair's id on the links (another pair uses another)
 *     group: 225.0.0.51           # multicast group of the adverts (default), port 3781 (default)
 *     links: [inside0, outside0, sync0]    # adverts go out and are heard on each
 *     unicastPeers:               # networks without multicast (clouds): the peer's address on
 *       - { interface: inside0, address: 10.50.1.3 }    # every link, adverts sent to it there
 *       - { interface: outside0, address: 198.51.100.3 } # instead of the group (keepalived's
 *       - { interface: sync0, address: 10.50.3.3 }      # unicast_peer)
 *     virtualAddresses:
 *       - { interface: inside0, cidr: 10.50.1.1/24 }
 *       - { interface: outside0, cidr: 198.51.100.10/24 }   # SNAT maps to it
 *     notify: notify.sh           # run on each transition: NEW_ROLE OLD_ROLE REASON
 *     stallMs: 500                # the main loop stuck this long -> FAULT (0: not watched)
 *     threadNice: -10             # the election thread's nice value (-20..19), ahead of the
 *                                 # packet path and other processes on a busy machine
 *     realtimePriority: 10        # SCHED_FIFO priority (1..99) of the thread that sends the
 *                                 # master's adverts (0: normal scheduling at threadNice)
 *     peerLink: true              # a TCP link from the backup to the master (the election port
 *                                 # on the sync address): the master's death (SIGKILL, crash)
 *                                 # seen at once, not after the master-down time (default true)
 *     track:                      # default: the data plane's interfaces (FAULT when down) and
 *       - { interface: inside0 }  # the sync interface (weight 50)
 *       - { interface: sync0, weight: 50 }
 */
import { isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { checkVirtualAddress, type VirtualAddress } from '../../failover/index.js';
import type { ConfigIssue } from './errors.js';
import { IfName, Ipv4Text } from './schema-parts.js';
import { ipv4, isMulticast, type SyncConfig } from './sync-config.js';

export const DEFAULT_FAILOVER_GROUP = '225.0.0.51';
export const DEFAULT_FAILOVER_PORT = 3781;
export const DEFAULT_ADVERT_INTERVAL_MS = 100;
export const DEFAULT_STALL_MS = 500;
/**
 * The election thread runs ahead of the rest of the machine: at a 10 ms interval a thread not
 * scheduled for 30 ms is a false failover, and the packet path of both nodes, the traffic and
 * everything else compete for the same cores (false takeovers before any fault in bench/failover
 * at load 4-14). The thread mostly sleeps; nice -10 weighs it about ten times a normal thread.
 */
export const DEFAULT_THREAD_NICE = -10;
/**
 * The master's adverts leave from a native thread (src/failover/advert-pacer.ts) at this SCHED_FIFO
 * priority: no garbage collection or busy core holds it (nice -10 alone still let a master with a
 * 1 M entry table go 31-40 ms silent: a false takeover at a 10 ms interval). It wakes once an
 * interval for a few microseconds. Low among real-time priorities: the kernel's own threads and
 * anything the operator runs in real time come first.
 */
export const DEFAULT_REALTIME_PRIORITY = 10;

export const FailoverSectionSchema = Type.Object(
  {
    priority: Type.Integer({ minimum: 1, maximum: 254, description: 'the higher priority is master' }),
    advertIntervalMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    preempt: Type.Optional(Type.Boolean()),
    preemptDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
    groupId: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    group: Type.Optional(Ipv4Text('multicast group of the adverts')),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    links: Type.Array(IfName, { minItems: 1, description: 'interfaces the adverts go out and are heard on' }),
    unicastPeers: Type.Optional(Type.Array(
      Type.Object({ interface: IfName, address: Ipv4Text("the peer's address on that link") }, { additionalProperties: false }),
      { minItems: 1, description: 'networks without multicast: adverts go to the peer on every link instead of the group' },
    )),
    virtualAddresses: Type.Array(
      Type.Object({ interface: IfName, cidr: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    ),
    notify: Type.Optional(Type.String({ minLength: 1, description: 'script run on each transition: NEW_ROLE OLD_ROLE REASON' })),
    stallMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
    threadNice: Type.Optional(Type.Integer({ minimum: -20, maximum: 19, description: "the election thread's nice value" })),
    realtimePriority: Type.Optional(Type.Integer({ minimum: 0, maximum: 99, description: "SCHED_FIFO priority of the thread sending the master's adverts; 0: normal scheduling" })),
    peerLink: Type.Optional(Type.Boolean({ description: "a TCP link to the master on the sync address: its process's death seen at once" })),
    track: Type.Optional(Type.Array(
      Type.Object({ interface: IfName, weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 253, description: 'lower the priority by this much while down (without: FAULT)' })) }, { additionalProperties: false }),
    )),
  },
  { additionalProperties: false },
);
export type FailoverSectionDoc = Static<typeof FailoverSectionSchema>;

export interface FailoverConfig {
  priority: number;
  advertIntervalMs: number;
  preempt: boolean;
  preemptDelayMs: number;
  groupId: number;
  group: string;
  port: number;
  links: string[];
  /** Per link, the peer's address (unicast adverts), or null: the multicast group. */
  unicastPeers: Record<string, string> | null;
  virtualAddresses: VirtualAddress[];
  /** Absolute path, or null. */
  notify: string | null;
  stallMs: number;
  /** The election thread's nice value. */
  threadNice: number;
  /** The advert pacer thread's SCHED_FIFO priority; 0: normal scheduling. */
  realtimePriority: number;
  /** The peer link (src/failover/peer-link.ts) on. */
  peerLink: boolean;
  /** Interfaces watched: down -> FAULT (weight null) or the priority lowered by weight. */
  track: { interface: string; weight: number | null }[];
}

/** Checks the failover section (the schema has passed); `config` is null when there are issues. */
/** The sync link down: lower the priority by this much (a master then hands over to a peer within 50). */
export const DEFAULT_SYNC_LINK_WEIGHT = 50;

export function readFailoverSection(
  doc: FailoverSectionDoc, baseDir: string, sync: SyncConfig | null, syncGiven: boolean, dataInterfaces: string[],
): { issues: ConfigIssue[]; config: FailoverConfig | null } {
  const issues: ConfigIssue[] = [];
  if (!syncGiven) issues.push({ path: '/failover', message: 'failover needs the sync section: adverts are signed with the sync keys, and a standby without the state would drop every flow' });
  const group = doc.group ?? DEFAULT_FAILOVER_GROUP;
  const g = ipv4(group);
  if (typeof g === 'string') issues.push({ path: '/failover/group', message: g });
  else if (!isMulticast(g)) issues.push({ path: '/failover/group', message: `${group} is not a multicast address (224.0.0.0/4); e.g. ${DEFAULT_FAILOVER_GROUP}` });
  const port = doc.port ?? DEFAULT_FAILOVER_PORT;
  if (sync !== null && port === sync.port) issues.push({ path: '/failover/port', message: `port ${port} is the sync port; give the election a port of its own (default ${DEFAULT_FAILOVER_PORT})` });
  const seen = new Set<string>();
  doc.links.forEach((l, i) => {
    if (seen.has(l)) issues.push({ path: `/failover/links/${i}`, message: `${l} is listed twice` });
    seen.add(l);
  });
  let unicastPeers: Record<string, string> | null = null;
  if (doc.unicastPeers !== undefined) {
    const peers: Record<string, string> = {};
    doc.unicastPeers.forEach((u, i) => {
      const a = ipv4(u.address);
      if (typeof a === 'string') issues.push({ path: `/failover/unicastPeers/${i}/address`, message: a });
      else if (isMulticast(a)) issues.push({ path: `/failover/unicastPeers/${i}/address`, message: `${u.address} is a multicast address; give the peer's own address on ${u.interface}` });
      if (!doc.links.includes(u.interface)) issues.push({ path: `/failover/unicastPeers/${i}/interface`, message: `${u.interface} is not one of failover.links (${doc.links.join(', ')})` });
      else if (peers[u.interface] !== undefined) issues.push({ path: `/failover/unicastPeers/${i}/interface`, message: `${u.interface} has a peer already` });
      peers[u.interface] = u.address;
    });
    // Adverts on a link without a peer would go nowhere: the election must hear the peer on all.
    doc.links.forEach((l, i) => {
      if (peers[l] === undefined) issues.push({ path: `/failover/links/${i}`, message: `${l} has no entry in failover.unicastPeers: give the peer's address on it, or remove it from links` });
    });
    unicastPeers = peers;
  }
  doc.virtualAddresses.forEach((v, i) => {
    const why = checkVirtualAddress(v);
    if (why !== null) issues.push({ path: `/failover/virtualAddresses/${i}`, message: why });
  });
  const tracked = new Set<string>();
  (doc.track ?? []).forEach((t, i) => {
    if (tracked.has(t.interface)) issues.push({ path: `/failover/track/${i}/interface`, message: `${t.interface} is tracked twice` });
    tracked.add(t.interface);
  });
  if (issues.length > 0) return { issues, config: null };
  const track = doc.track !== undefined
    ? doc.track.map((t) => ({ interface: t.interface, weight: t.weight ?? null }))
    : [...dataInterfaces.map((i) => ({ interface: i, weight: null as number | null })), ...(sync ? [{ interface: sync.interface, weight: DEFAULT_SYNC_LINK_WEIGHT }] : [])];
  return {
    issues,
    config: {
      priority: doc.priority, advertIntervalMs: doc.advertIntervalMs ?? DEFAULT_ADVERT_INTERVAL_MS, preempt: doc.preempt ?? true,
      preemptDelayMs: doc.preemptDelayMs ?? 0, groupId: doc.groupId ?? 1, group, port, links: [...doc.links], unicastPeers,
      virtualAddresses: doc.virtualAddresses.map((v) => ({ ...v })),
      notify: doc.notify === undefined ? null : isAbsolute(doc.notify) ? doc.notify : resolve(baseDir, doc.notify),
      stallMs: doc.stallMs ?? DEFAULT_STALL_MS,
      threadNice: doc.threadNice ?? DEFAULT_THREAD_NICE,
      realtimePriority: doc.realtimePriority ?? DEFAULT_REALTIME_PRIORITY,
      peerLink: doc.peerLink ?? true,
      track,
    },
  };
}
