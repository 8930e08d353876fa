/**
 * The config's `sync` section: the link to the peer node (src/sync). Checked like the rest of the
 * config, every problem with its path: the addresses, exactly one of `group` (multicast) and
 * `peer` (unicast), the key files (read here, relative to the config file: a missing or short key
 * is refused before anything starts), the sending key, and the exemption rules.
 *
 *   sync:
 *     nodeId: 1                  # 1..2^32-1, unique in the pair
 *     interface: sync0           # the dedicated sync interface
 *     address: 192.168.50.1      # this node's IPv4 address on it
 *     group: 225.0.0.50          # multicast; or `peer: 192.168.50.2` (unicast)
 *     port: 3780                 # default 3780; added to dataplane.excludedUdpPorts
 *     mtu: 1500                  # 576..65535, default 1500
 *     keys: [{ id: 1, file: sync.key }]   # hex or raw, at least 16 bytes
 *     sendKey: 1
 *     exempt: [{ proto: udp, dst: 10.0.0.53 }]
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { MIN_KEY_BYTES, SYNC_DEFAULTS, checkExemptRules, type ExemptRuleSpec, type SyncKey, type SyncNodeOptions } from '../../sync/index.js';
import { parseAddress } from '../packet/index.js';
import type { ConfigIssue } from './errors.js';
import { IfName, Ipv4Text } from './schema-parts.js';

export const DEFAULT_SYNC_PORT = 3780;
export const DEFAULT_SYNC_MTU: number = SYNC_DEFAULTS.mtu;
/** Memory the resend window may take (windowSize x mtu). */
const MAX_WINDOW_BYTES = 512 * 1024 * 1024;

const Int = (minimum: number, maximum: number, description: string) => Type.Optional(Type.Integer({ minimum, maximum, description }));

export const SyncSectionSchema = Type.Object(
  {
    nodeId: Type.Integer({ minimum: 1, maximum: 4_294_967_295, description: "this node's id on the sync link, unique in the pair" }),
    interface: IfName,
    address: Ipv4Text("this node's IPv4 address on the sync interface"),
    group: Type.Optional(Ipv4Text('multicast group (224.0.0.0/4), e.g. 225.0.0.50')),
    peer: Type.Optional(Ipv4Text("the peer's unicast IPv4 address on the sync link")),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 65535, description: 'largest datagram, IP and UDP headers included' })),
    keys: Type.Array(
      Type.Object(
        {
          id: Type.Integer({ minimum: 0, maximum: 255 }),
          /** Relative to the config file's folder. */
          file: Type.String({ minLength: 1, description: 'file holding the secret, hex or raw, at least 16 bytes' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    sendKey: Type.Integer({ minimum: 0, maximum: 255, description: 'id of the key this node signs with' }),
    flushMs: Int(0, 1000, 'coalescing window for new entries and state changes; 0 (default): at the end of the event loop turn'),
    refreshMs: Int(50, 60_000, 'window, counter and timeout changes are sent this often'),
    windowSize: Int(16, 1_048_576, 'messages kept for resending on NACK'),
    aliveIdleMs: Int(1, 1000, 'first ALIVE after the link went idle'),
    aliveIntervalMs: Int(10, 10_000, 'ALIVE heartbeat'),
    resyncBatch: Int(1, 1_000_000, 'entries dumped per turn of the event loop in a bulk resync'),
    maxInFlight: Int(1, 1_048_576, 'bulk dump messages sent beyond the peer\'s last REPORT at most (default: 160 KiB of them)'),
    resyncRate: Int(0, 100_000_000, 'entries per second a bulk dump sends at most (0, the default: as fast as the peer applies)'),
    nackRetryMs: Int(1, 10_000, 'a gap is NACKed again this often'),
    reportMs: Int(1, 10_000, 'REPORT period while messages are applied'),
    resyncRetryMs: Int(10, 60_000, 'a resync request is repeated this often until the dump ends'),
    exempt: Type.Optional(
      Type.Array(
        Type.Object(
          {
            src: Type.Optional(Type.String({ minLength: 1, description: 'original source address or CIDR' })),
            dst: Type.Optional(Type.String({ minLength: 1, description: 'original destination address or CIDR' })),
            proto: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 0, maximum: 255 })], { description: 'tcp, udp, icmp, icmpv6 or a number' })),
            state: Type.Optional(Type.String({ minLength: 1, description: 'TCP state the entry is created in (SYN_SENT, ESTABLISHED...), with proto tcp' })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
);
export type SyncSectionDoc = Static<typeof SyncSectionSchema>;

/** SyncNode's timing and sizing options that the config may set. */
export type SyncTuning = Partial<Pick<SyncNodeOptions,
  'flushMs' | 'refreshMs' | 'windowSize' | 'aliveIdleMs' | 'aliveIntervalMs' | 'resyncBatch' | 'maxInFlight' | 'resyncRate' | 'nackRetryMs' | 'reportMs' | 'resyncRetryMs'>>;
const tuningKeys = [
  'flushMs', 'refreshMs', 'windowSize', 'aliveIdleMs', 'aliveIntervalMs', 'resyncBatch', 'maxInFlight', 'resyncRate', 'nackRetryMs', 'reportMs', 'resyncRetryMs',
] as const;

/** The sync section with defaults applied and the keys read. */
export interface SyncConfig {
  nodeId: number;
  interface: string;
  address: string;
  /** Multicast group, or null for unicast to `peer`. */
  group: string | null;
  peer: string | null;
  port: number;
  mtu: number;
  keys: SyncKey[];
  sendKey: number;
  tuning: SyncTuning;
  exempt: ExemptRuleSpec[];
}

/** IPv4 address as a number, or why it is not one. */
export function ipv4(text: string): number | string {
  try {
    const a = parseAddress(text);
    return a.family === 4 ? a.words[0] : 'not an IPv4 address';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export const isMulticast = (a: number): boolean => a >>> 28 === 0xe;

function addressIssues(doc: SyncSectionDoc): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const own = ipv4(doc.address);
  if (typeof own === 'string') out.push({ path: '/sync/address', message: own });
  else if (own === 0 || own === 0xffffffff || isMulticast(own)) {
    out.push({ path: '/sync/address', message: `${doc.address} is not a unicast address; give this node's address on the sync interface` });
  }
  if (doc.group !== undefined && doc.peer !== undefined) {
    out.push({ path: '/sync/peer', message: 'give either group (multicast) or peer (unicast), not both' });
  } else if (doc.group === undefined && doc.peer === undefined) {
    out.push({ path: '/sync', message: "give group (a multicast address such as 225.0.0.50) or peer (the peer's unicast address on the sync link)" });
  }
  if (doc.group !== undefined) {
    const g = ipv4(doc.group);
    if (typeof g === 'string') out.push({ path: '/sync/group', message: g });
    else if (!isMulticast(g)) out.push({ path: '/sync/group', message: `${doc.group} is not a multicast address (224.0.0.0/4); e.g. 225.0.0.50, or use peer for unicast` });
  }
  if (doc.peer !== undefined) {
    const p = ipv4(doc.peer);
    if (typeof p === 'string') out.push({ path: '/sync/peer', message: p });
    else if (p === 0 || p === 0xffffffff || isMulticast(p)) out.push({ path: '/sync/peer', message: `${doc.peer} is not a unicast address; for multicast use group` });
    else if (p === own) out.push({ path: '/sync/peer', message: `${doc.peer} is this node's own address; give the peer's` });
  }
  return out;
}

/** The secret in a key file: hex when the file holds hex digits only (whitespace around), raw bytes otherwise. */
function readKey(path: string): Buffer | string {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    return `cannot read key file ${path}: ${e instanceof Error ? e.message : String(e)}; create it on both nodes with \`openssl rand -hex 32 > ${path}\``;
  }
  const text = raw.toString('latin1').trim();
  let secret = raw;
  if (/^[0-9A-Fa-f]+$/.test(text)) {
    if (text.length % 2 !== 0) return `key file ${path} holds ${text.length} hex digits, an odd number: a digit is missing or extra`;
    secret = Buffer.from(text, 'hex');
  }
  if (secret.length < MIN_KEY_BYTES) {
    return `key file ${path} holds ${secret.length} bytes; a sync key needs at least ${MIN_KEY_BYTES} (create one with \`openssl rand -hex 32 > ${path}\`)`;
  }
  return secret;
}

function keyIssues(doc: SyncSectionDoc, baseDir: string, keys: SyncKey[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<number>();
  doc.keys.forEach((k, i) => {
    if (seen.has(k.id)) out.push({ path: `/sync/keys/${i}/id`, message: `key id ${k.id} is given twice; each key needs its own id` });
    seen.add(k.id);
    const got = readKey(isAbsolute(k.file) ? k.file : resolve(baseDir, k.file));
    if (typeof got === 'string') out.push({ path: `/sync/keys/${i}/file`, message: got });
    else keys.push({ id: k.id, secret: got });
  });
  if (!seen.has(doc.sendKey)) {
    out.push({ path: '/sync/sendKey', message: `key id ${doc.sendKey} is not among keys (${[...seen].join(', ')}); give the id of a configured key` });
  }
  return out;
}

/**
 * Checks the sync section (the schema has passed) and reads its key files. `config` is null when
 * there are issues.
 */
export function readSyncSection(doc: SyncSectionDoc, baseDir: string): { issues: ConfigIssue[]; config: SyncConfig | null } {
  const keys: SyncKey[] = [];
  const issues = [...addressIssues(doc), ...keyIssues(doc, baseDir, keys)];
  const mtu = doc.mtu ?? DEFAULT_SYNC_MTU;
  const windowSize = doc.windowSize ?? SYNC_DEFAULTS.windowSize;
  if (windowSize * mtu > MAX_WINDOW_BYTES) {
    issues.push({ path: '/sync/windowSize', message: `the resend window would take ${Math.round((windowSize * mtu) / 1048576)} MiB (windowSize x mtu); keep it under ${MAX_WINDOW_BYTES / 1048576} MiB` });
  }
  const exempt: ExemptRuleSpec[] = (doc.exempt ?? []).map((r) => ({ ...r }));
  for (const e of checkExemptRules(exempt)) issues.push({ path: `/sync/exempt/${e.index}${e.field ? `/${e.field}` : ''}`, message: e.message });
  if (issues.length > 0) return { issues, config: null };
  const tuning: SyncTuning = {};
  for (const k of tuningKeys) if (doc[k] !== undefined) tuning[k] = doc[k];
  return {
    issues,
    config: {
      nodeId: doc.nodeId, interface: doc.interface, address: doc.address, group: doc.group ?? null, peer: doc.peer ?? null,
      port: doc.port ?? DEFAULT_SYNC_PORT, mtu, keys, sendKey: doc.sendKey, tuning, exempt,
    },
  };
}
