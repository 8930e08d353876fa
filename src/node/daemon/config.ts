/**
 * The node's config: one YAML file, validated against a typebox schema and refused whole (every
 * error with its JSON path and line) before anything starts. Timeouts are in seconds, as the
 * kernel's nf_conntrack_* sysctls that operators already know; the engine gets milliseconds.
 *
 * Sections: node, dataplane, ruleset, conntrack, control, metrics, log, sync (sync-config.ts: the
 * peer link, its keys read from their files here, so a missing or short key is refused with its
 * path too). `failover` is the section still to come (src/failover): until then an unknown key is
 * an error, so a typo never silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument } from 'yaml';
import type { ConntrackOptions } from '../conntrack/index.js';
import { ConfigError, ConfigFileError, type ConfigIssue } from './errors.js';
import { locate } from '../yaml/locate.js';
import { IfName } from './schema-parts.js';
import { SyncSectionSchema, readSyncSection, type SyncConfig } from './sync-config.js';
import { FailoverSectionSchema, readFailoverSection, type FailoverConfig } from './failover-config.js';

const Seconds = (description: string) => Type.Integer({ minimum: 1, maximum: 2_000_000, description });

export const NodeConfigSchema = Type.Object(
  {
    node: Type.Object(
      {
        name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }),
        /**
         * SCHED_RR priority (1-99) of the main thread (packet path, sync), as conntrackd's and
         * keepalived's Scheduler settings; 0 (default): normal scheduling. Other work on the
         * machine then no longer preempts it (the sync lag's tail, bench/RESULTS.md); at full
         * load it keeps a core to itself. Below failover.realtimePriority.
         */
        realtimePriority: Type.Optional(Type.Integer({ minimum: 0, maximum: 99 })),
      },
      { additionalProperties: false },
    ),
    dataplane: Type.Object(
      {
        /** Interfaces whose packets are queued to the node (raw PREROUTING -i IF). */
        interfaces: Type.Array(IfName, { minItems: 1, uniqueItems: true }),
        /** NFQUEUE number. */
        queue: Type.Integer({ minimum: 0, maximum: 65535 }),
        /** --queue-bypass: with the daemon gone, packets pass (true) or are dropped (false, default). */
        failOpen: Type.Optional(Type.Boolean()),
        /** UDP destination ports never queued (the pair's sync and election traffic). */
        excludedUdpPorts: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { uniqueItems: true })),
      },
      { additionalProperties: false },
    ),
    /** Ruleset file; a relative path is taken from the config file's folder. */
    ruleset: Type.String({ minLength: 1 }),
    conntrack: Type.Optional(
      Type.Object(
        {
          maxEntries: Type.Optional(Type.Integer({ minimum: 16, maximum: 16_777_216 })),
          /**
           * Allocate the whole table at start (default true: about 240 bytes per entry of
           * maxEntries). Otherwise it starts at 64 k entries and doubles, and each doubling
           * rehashes every entry: a stall of tens of ms at a million, with packets and sync
           * messages waiting.
           */
          preallocate: Type.Optional(Type.Boolean()),
          timeouts: Type.Optional(
            Type.Object(
              {
                udpUnreplied: Type.Optional(Seconds('nf_conntrack_udp_timeout')),
                udpReplied: Type.Optional(Seconds('nf_conntrack_udp_timeout_stream')),
                icmp: Type.Optional(Seconds('nf_conntrack_icmp_timeout')),
                generic: Type.Optional(Seconds('nf_conntrack_generic_timeout')),
                tcpSynSent: Type.Optional(Seconds('nf_conntrack_tcp_timeout_syn_sent')),
                tcpSynRecv: Type.Optional(Seconds('nf_conntrack_tcp_timeout_syn_recv')),
                tcpEstablished: Type.Optional(Seconds('nf_conntrack_tcp_timeout_established')),
                tcpFinWait: Type.Optional(Seconds('nf_conntrack_tcp_timeout_fin_wait')),
                tcpCloseWait: Type.Optional(Seconds('nf_conntrack_tcp_timeout_close_wait')),
                tcpLastAck: Type.Optional(Seconds('nf_conntrack_tcp_timeout_last_ack')),
                tcpTimeWait: Type.Optional(Seconds('nf_conntrack_tcp_timeout_time_wait')),
                tcpClose: Type.Optional(Seconds('nf_conntrack_tcp_timeout_close')),
              },
              { additionalProperties: false },
            ),
          ),
          /** nf_conntrack_tcp_be_liberal / nf_conntrack_tcp_loose. */
          tcpLiberal: Type.Optional(Type.Boolean()),
          tcpLoose: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    control: Type.Optional(
      Type.Object({ socket: Type.String({ minLength: 1, maxLength: 107 }) }, { additionalProperties: false }),
    ),
    metrics: Type.Optional(
      Type.Object(
        {
          /** host:port, e.g. 0.0.0.0:9720 or [::]:9720; port 0 picks a free one (tests). */
          listen: Type.String({ pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' }),
        },
        { additionalProperties: false },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        {
          level: Type.Union([
            Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
            Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'),
          ]),
        },
        { additionalProperties: false },
      ),
    ),
    /** State sync with the peer node (sync-config.ts). */
    sync: Type.Optional(SyncSectionSchema),
    /** Election and virtual addresses (failover-config.ts); needs sync. */
    failover: Type.Optional(FailoverSectionSchema),
  },
  { additionalProperties: false },
);
export type NodeConfigDoc = Static<typeof NodeConfigSchema>;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** The config with defaults applied and paths resolved: what the node runs with. */
export interface NodeConfig {
  name: string;
  /** SCHED_RR priority of the main thread; 0: normal scheduling. */
  realtimePriority: number;
  /** excludedUdpPorts includes the sync port when sync is configured. */
  dataplane: { interfaces: string[]; queue: number; failOpen: boolean; excludedUdpPorts: number[] };
  /** Absolute path of the ruleset file. */
  rulesetPath: string;
  conntrack: ConntrackOptions;
  controlSocket: string;
  metrics: { host: string; port: number } | null;
  logLevel: LogLevel;
  /** null: this node runs alone (no sync section). */
  sync: SyncConfig | null;
  /** null: no election (the node forwards whenever it runs). */
  failover: FailoverConfig | null;
}

export const DEFAULT_MAX_ENTRIES = 262_144;
export const DEFAULT_CONTROL_SOCKET = '/run/twinwall/control.sock';


/** Every schema error, one per path (typebox may report a union failure several times). */
function schemaIssues(value: unknown): ConfigIssue[] {
  const seen = new Set<string>();
  const out: ConfigIssue[] = [];
  for (const e of Value.Errors(NodeConfigSchema, value)) {
    const key = `${e.path}\n${e.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: e.path, message: e.message });
  }
  return out;
}

const sec = (s: number | undefined): number | undefined => (s === undefined ? undefined : s * 1000);

/** Checks that need more than the schema (ports in range); the sync section checks itself. */
function meaningIssues(doc: NodeConfigDoc): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  if (doc.metrics) {
    const port = Number(doc.metrics.listen.slice(doc.metrics.listen.lastIndexOf(':') + 1));
    if (port > 65535) out.push({ path: '/metrics/listen', message: `port ${port} is above 65535` });
  }
  return out;
}

function resolveConfig(doc: NodeConfigDoc, baseDir: string, sync: SyncConfig | null, failover: FailoverConfig | null): NodeConfig {
  const t = doc.conntrack?.timeouts ?? {};
  const tcpTimeouts = Object.fromEntries(
    Object.entries({
      synSent: sec(t.tcpSynSent), synRecv: sec(t.tcpSynRecv), established: sec(t.tcpEstablished),
      finWait: sec(t.tcpFinWait), closeWait: sec(t.tcpCloseWait), lastAck: sec(t.tcpLastAck),
      timeWait: sec(t.tcpTimeWait), close: sec(t.tcpClose),
    }).filter(([, v]) => v !== undefined),
  );
  const timeouts = Object.fromEntries(
    Object.entries({ udpUnreplied: sec(t.udpUnreplied), udpReplied: sec(t.udpReplied), icmp: sec(t.icmp), generic: sec(t.generic) })
      .filter(([, v]) => v !== undefined),
  );
  const tcp: NonNullable<ConntrackOptions['tcp']> = { timeouts: tcpTimeouts };
  if (doc.conntrack?.tcpLiberal !== undefined) tcp.liberal = doc.conntrack.tcpLiberal;
  if (doc.conntrack?.tcpLoose !== undefined) tcp.loose = doc.conntrack.tcpLoose;
  let metrics: NodeConfig['metrics'] = null;
  if (doc.metrics) {
    const i = doc.metrics.listen.lastIndexOf(':');
    metrics = { host: doc.metrics.listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(doc.metrics.listen.slice(i + 1)) };
  }
  const excludedUdpPorts = [...(doc.dataplane.excludedUdpPorts ?? [])];
  // Sync traffic is never queued: a node whose queue stalls must still hear its peer.
  if (sync && !excludedUdpPorts.includes(sync.port)) excludedUdpPorts.push(sync.port);
  // Nor are adverts: a stalled queue must not silence the election.
  if (failover && !excludedUdpPorts.includes(failover.port)) excludedUdpPorts.push(failover.port);
  return {
    name: doc.node.name,
    realtimePriority: doc.node.realtimePriority ?? 0,
    dataplane: {
      interfaces: [...doc.dataplane.interfaces], queue: doc.dataplane.queue, failOpen: doc.dataplane.failOpen ?? false,
      excludedUdpPorts,
    },
    rulesetPath: isAbsolute(doc.ruleset) ? doc.ruleset : resolve(baseDir, doc.ruleset),
    conntrack: {
      maxEntries: doc.conntrack?.maxEntries ?? DEFAULT_MAX_ENTRIES,
      initialCapacity: doc.conntrack?.preallocate === false ? undefined : doc.conntrack?.maxEntries ?? DEFAULT_MAX_ENTRIES,
      prefault: doc.conntrack?.preallocate !== false,
      timeouts,
      tcp,
    },
    controlSocket: doc.control?.socket
      ? isAbsolute(doc.control.socket) ? doc.control.socket : resolve(baseDir, doc.control.socket)
      : DEFAULT_CONTROL_SOCKET,
    metrics,
    logLevel: doc.log?.level ?? 'info',
    sync,
    failover,
  };
}

/**
 * Parses and validates config YAML. `baseDir` resolves relative paths (the config file's folder).
 * Throws ConfigError with every problem found.
 */
export function parseConfig(text: string, baseDir: string, source?: string): NodeConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax: ${e.message}`, line: pos.line, column: pos.col };
      }),
      source,
    );
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  let issues = schemaIssues(value);
  let sync: SyncConfig | null = null;
  let failover: FailoverConfig | null = null;
  if (issues.length === 0) {
    const d = value as NodeConfigDoc;
    issues = meaningIssues(d);
    if (d.sync) {
      const read = readSyncSection(d.sync, baseDir);
      issues.push(...read.issues);
      sync = read.config;
    }
    if (d.failover) {
      const read = readFailoverSection(d.failover, baseDir, sync, d.sync !== undefined, d.dataplane.interfaces);
      issues.push(...read.issues);
      failover = read.config;
      const rt = d.node.realtimePriority ?? 0;
      if (failover && rt > 0 && rt >= failover.realtimePriority) {
        issues.push({
          path: '/node/realtimePriority',
          message: `${rt} is not below failover.realtimePriority (${failover.realtimePriority}): the advert pacer must preempt the main thread on a shared core; lower it, or raise failover.realtimePriority`,
        });
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(issues.map((e) => ({ ...e, ...locate(doc, lc, e.path) })), source);
  return resolveConfig(value as NodeConfigDoc, baseDir, sync, failover);
}

/** Reads and parses a config file (ConfigFileError when unreadable, ConfigError when bad). */
export function loadConfigFile(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigFileError(path, e);
  }
  return parseConfig(text, dirname(resolve(path)), path);
}
