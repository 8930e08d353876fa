/**
 * The election's own thread: its timers and sockets live here, off the engine's event loop, so a
 * busy packet path (or a stall of tens of ms in it) never delays an advert or a master-down timer
 * (at a 10 ms interval, a 30 ms stall of the main loop would otherwise be a false failover).
 *
 * Sockets: one receiving (the election port, joined to the group on every link: the protected
 * networks and the sync link) and one sending per link (bound to the link's address, TTL 1,
 * loopback off), sending to the group or, where multicast is not carried (clouds), to the peer's
 * address on that link (failover.unicastPeers). Every advert goes out on every link; each copy after the first that arrives is
 * counted as a duplicate.
 *
 * The main thread proves it is alive by bumping a shared counter (ElectionRunner.beat()); if it
 * does not move for `stallMs`, the node goes to FAULT ('dataplane') and a master steps down.
 * Tracked interfaces are read from /sys/class/net/NAME/operstate: down -> FAULT or a penalty.
 * As BACKUP, the thread holds a peer link (peer-link.ts, TCP on the election port of the
 * master's sync address) whose closing says at once that the master's process is gone.
 * Messages: see runner.ts (WorkerRequest / WorkerEvent).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Keyring } from '../sync/auth.js';
import { Role, addressText, encodeAdvert, type Advert } from './advert.js';
import { Election, type ElectionClock } from './election.js';
import { PeerLink } from './peer-link.js';
import { DeathWatchLinks } from './death-watch.js';
import { AdvertPacer } from './advert-pacer.js';
import type { RunnerConfig, WorkerEvent, WorkerRequest } from './runner.js';

const cfg = workerData as RunnerConfig & { heartbeat: SharedArrayBuffer };
const port = parentPort as NonNullable<typeof parentPort>;
const post = (e: WorkerEvent): void => port.postMessage(e);

/**
 * The election's timers fire in the check phase (setImmediate from the timeout), after the poll
 * phase has read the datagrams already waiting. Node runs timers before I/O: a thread that was
 * not scheduled for a while (a loaded machine) would otherwise run an overdue master-down timer
 * before reading the master's adverts queued meanwhile, and take over although the master is
 * alive. A timer cleared in between (an advert re-armed it) does not fire.
 */
interface ElectionTimer { t: NodeJS.Timeout; cleared: boolean }
const clock: ElectionClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const h: ElectionTimer = { t: setTimeout(() => setImmediate(() => h.cleared || fn()), ms), cleared: false };
    return h;
  },
  clearTimer: (h) => {
    const x = h as ElectionTimer;
    x.cleared = true;
    clearTimeout(x.t);
  },
};

const keys = new Keyring(cfg.keys.map((k) => ({ id: k.id, secret: Buffer.from(k.secretHex, 'hex') })), cfg.sendKeyId);
/** One sending socket per link, and the one that receives. */
const sockets: Socket[] = [];
let receiver: Socket | null = null;
const out = Buffer.alloc(64);
/** Sends every advert, and the master's periodic ones on its own thread (advert-pacer.ts). */
let pacer: AdvertPacer | null = null;
/** Socket errors by link name ('receive' for the receiving socket). */
const sendErrors: Record<string, number> = {};
const countError = (key: string): void => void (sendErrors[key] = (sendErrors[key] ?? 0) + 1);

const election = new Election(
  {
    nodeId: cfg.nodeId, groupId: cfg.groupId, priority: cfg.priority, advertIntervalMs: cfg.advertIntervalMs,
    preempt: cfg.preempt, preemptDelayMs: cfg.preemptDelayMs, address: Buffer.from(cfg.addressHex, 'hex'), epoch: cfg.epoch, keys, clock,
  },
  {
    advertise(a: Readonly<Advert>): void {
      // (Opened before the election starts.) It stamps the sequence number, signs and sends on
      // every link at once, from this thread; and repeats it as master (election.ts).
      pacer?.send(encodeAdvert(a, keys, out));
    },
    get pacer(): AdvertPacer | undefined {
      return pacer ?? undefined;
    },
    transition(from, to, reason): void {
      post({ type: 'transition', from, to, reason, at: Date.now() });
      // (peerLink is set by the time the election starts.)
      if (to !== Role.BACKUP) peerLink?.follow(null);
    },
  },
);

/** This node's sync address, as its adverts carry it: where its peer link listens. */
const ownAddress = addressText(Buffer.from(cfg.addressHex, 'hex'));
/** The peer link: listening (for when this node is master), following the master as BACKUP. */
const deathWatch = cfg.peerLink === false || cfg.deathWatchSock === undefined ? null : new DeathWatchLinks(cfg.deathWatchSock);
const peerLink = cfg.peerLink === false ? null : new PeerLink({
  nodeId: cfg.nodeId, epoch: cfg.epoch, keys, address: ownAddress, port: cfg.port,
  onGone: (peer, why) => election.peerGone(peer.id, peer.epoch, why),
  ...(deathWatch !== null ? { deathWatch } : {}),
});
/** After every advert and transition: follow the master we are BACKUP of, or nobody. */
function followMaster(): void {
  if (peerLink === null) return;
  const m = election.master;
  peerLink.follow(election.role === Role.BACKUP && m !== null ? m : null);
}

/** Bind a socket; resolves once bound. */
function bound(s: Socket, port: number, address?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, address, () => {
      s.removeListener('error', reject);
      resolve();
    });
  });
}

/**
 * The receiving socket: the election port on any address, joined to the group on every link.
 * One socket only: Linux hands a group's datagrams to every socket bound to the port that joined
 * it anywhere (IP_MULTICAST_ALL), so a socket per link would see each datagram once per link.
 */
async function openReceiver(): Promise<Socket> {
  const s = createSocket({ type: 'udp4', reuseAddr: true });
  await bound(s, cfg.port);
  // Unicast links (failover.unicastPeers) need no membership: the peer sends to our address.
  for (const l of cfg.links) if (l.peer === undefined) s.addMembership(cfg.group, l.address);
  s.on('message', (msg) => {
    election.receive(msg);
    followMaster();
  });
  s.on('error', () => countError('receive'));
  return s;
}

/** A sending socket per link: bound to the link's address (an ephemeral port), sending out there. */
async function openSender(name: string, address: string): Promise<Socket> {
  const s = createSocket({ type: 'udp4' });
  await bound(s, 0, address);
  s.setMulticastInterface(address);
  s.setMulticastTTL(1);
  s.setMulticastLoopback(false);
  // Errors after the start (a link gone): counted, the other links carry on.
  s.on('error', () => countError(name));
  return s;
}

/** The data plane's heartbeat: a counter the main thread bumps; stuck for stallMs -> FAULT. */
const beats = new Int32Array(cfg.heartbeat);
let lastBeat = Atomics.load(beats, 0);
let lastMove = performance.now();
function watchHeartbeat(): void {
  const b = Atomics.load(beats, 0);
  const now = performance.now();
  if (b !== lastBeat) {
    lastBeat = b;
    lastMove = now;
    if (election.faults.includes('dataplane')) election.setHealth('dataplane', null);
  } else if (now - lastMove > cfg.stallMs && !election.faults.includes('dataplane')) {
    election.setHealth('dataplane', { fault: true });
  }
}

/** Tracked interfaces: down (operstate not up) -> FAULT, or a penalty when they have a weight. */
const linkDown = new Map<string, boolean>();
function watchLinks(): void {
  for (const t of cfg.track ?? []) {
    let state: string;
    try {
      state = readFileSync(`/sys/class/net/${t.name}/operstate`, 'latin1').trim();
    } catch {
      state = 'gone';
    }
    // 'unknown' is what interfaces without carrier reporting say (dummy, some tunnels): up.
    const down = state !== 'up' && state !== 'unknown';
    if (linkDown.get(t.name) === down) continue;
    linkDown.set(t.name, down);
    const name = `link ${t.name} down`;
    if (!down) election.setHealth(name, null);
    else election.setHealth(name, t.weight === null ? { fault: true } : { penalty: t.weight });
  }
}

/**
 * The kernel's link events (`ip monitor link`, started once with the thread): a tracked link that
 * goes down is read at once instead of at the next poll (up to min(interval, 100 ms) later: at a
 * 10 ms interval that was 5 ms on average of the link-down drill's outage). The poll stays, for a
 * monitor that died or missed an event.
 */
let linkMonitor: ChildProcess | null = null;
function watchLinkEvents(): void {
  const names = new Set((cfg.track ?? []).map((t) => t.name));
  // Tied to this process: the child inherits its descriptors, the NFQUEUE socket among them (the
  // binding does not set close-on-exec), and an `ip monitor` outliving a SIGKILLed daemon kept
  // the queue bound, so the restarted node could not bind it (CI, the drills). The shell waits on
  // its stdin, our pipe: at our end (exit, kill, or stop() closing it) it kills the monitor.
  const mon = spawn('sh', ['-c', 'ip monitor link & read _; kill $! 2>/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
  mon.on('error', () => countError('link monitor'));
  mon.stdout.setEncoding('utf8');
  mon.stdout.on('data', (chunk: string) => {
    // Lines like "3: inside0@if2: <BROADCAST,MULTICAST> mtu 1500 ... state DOWN ..."
    for (const line of chunk.split('\n')) {
      const m = /^\d+: ([^:@\s]+)[@:]/.exec(line);
      if (m !== null && names.has(m[1])) {
        watchLinks();
        return;
      }
    }
  });
  mon.unref();
  (mon.stdout as unknown as { unref(): void }).unref();
  (mon.stdin as unknown as { unref(): void }).unref();
  linkMonitor = mon;
}

function status(): WorkerEvent {
  return {
    type: 'status', role: election.role, priority: election.priority, faults: election.faults,
    master: election.master, stats: election.stats, sendErrors,
    peerLink: peerLink === null ? null : { up: peerLink.up, ...peerLink.stats },
    deathWatch: deathWatch === null ? null : { ...deathWatch.stats },
    pacer: pacer === null ? null : pacer.state(),
  };
}

port.on('message', (m: WorkerRequest) => {
  switch (m.type) {
    case 'health':
      election.setHealth(m.name, m.state);
      break;
    case 'switchover':
      post({ type: 'switchover', done: election.switchover() });
      break;
    case 'hold-preemption':
      election.holdPreemption(m.on);
      break;
    case 'status':
      post(status());
      break;
    case 'stop':
      election.stop();
      linkMonitor?.stdin?.end();
      // Let the priority-0 adverts leave before the sockets close.
      setTimeout(() => {
        pacer?.close();
        peerLink?.close();
        for (const s of sockets) s.close();
        receiver?.close();
        post({ type: 'stopped' });
      }, 20);
      break;
  }
});

/**
 * This thread's nice value: Linux schedules threads, and setpriority() on a thread id changes
 * that thread only (/proc/thread-self names it). Needs CAP_SYS_NICE to go below 0.
 */
function setThreadNice(nice: number | undefined): { tid: number | null; nice: number | null; error: string | null } {
  let tid: number | null = null;
  try {
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (nice !== undefined) setPriority(tid, nice);
    return { tid, nice: getPriority(tid), error: null };
  } catch (e) {
    return { tid, nice: null, error: `cannot set the election thread's nice value to ${nice}: ${(e as Error).message} (needs CAP_SYS_NICE)` };
  }
}

try {
  const thread = setThreadNice(cfg.nice);
  await peerLink?.listen().catch((e: Error) => {
    throw new Error(`the peer link cannot listen on TCP ${ownAddress}:${cfg.port} (${e.message}): free the port or set failover.peerLink: false`);
  });
  receiver = await openReceiver();
  for (const l of cfg.links) sockets.push(await openSender(l.name, l.address));
  pacer = new AdvertPacer(cfg.links.map((l, i) => ({ socket: sockets[i], dest: l.peer ?? cfg.group })), {
    port: cfg.port, keys, rtPriority: cfg.rtPriority ?? 0, ...(cfg.nice !== undefined ? { nice: cfg.nice } : {}),
  });
  if (cfg.stallMs > 0) setInterval(watchHeartbeat, Math.max(1, Math.min(cfg.advertIntervalMs, cfg.stallMs / 4)));
  if ((cfg.track ?? []).length > 0) {
    // Before the start: a node whose tracked link is down starts in FAULT.
    watchLinks();
    setInterval(watchLinks, Math.min(cfg.advertIntervalMs, 100));
    watchLinkEvents();
  }
  if (cfg.holdPreemption === true) election.holdPreemption(true);
  election.start();
  post({ type: 'started', thread });
} catch (e) {
  post({ type: 'error', message: `failover: cannot open the election sockets: ${(e as Error).message}` });
}
