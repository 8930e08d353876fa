/**
 * The failover drills against the pair in containers (docker-compose.yml, test/compose/compose.ts):
 * 50 long-lived TCP flows and a 1 kHz UDP probe from the client container through the virtual
 * addresses (SNAT to the outside one) while Docker breaks the master: a planned switchover, `docker
 * kill`, `docker pause` for a second, its inside and outside networks disconnected for 1.5 s. Every
 * flow must survive with the NAT port the server saw. Run by `npm run test:compose` (CI runs it
 * after `npm test`); the first image build takes a few minutes, later ones seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labRequired } from '../lab/netns.js';
import { compileProject } from '../lab/compile.js';
import { formatDrill, type DrillReport } from '../lab/drill.js';
import { ComposeDrill, composeAvailable, container, dockerVersion } from './compose.js';

const avail = composeAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
const root = new URL('../../', import.meta.url).pathname;

describe.skipIf(!avail.ok)('compose drills (fw-a and fw-b in containers, faults made with Docker)', () => {
  const drill = new ComposeDrill();
  /** Print the report; every flow survived with the NAT port the server saw. */
  const allSurvived = (r: DrillReport): void => {
    console.log(formatDrill(r));
    expect(r.survived, drill.diagnostics()).toBe(r.flows);
    expect(r.samePort).toBe(r.flows);
  };

  /** Docker and compose are there (the build went through): afterAll has a stack to remove. */
  let built = false;

  beforeAll(async () => {
    compileProject(root);
    const t0 = Date.now();
    console.log(drill.build(true));
    built = true;
    console.log(`compose drill: images ready in ${((Date.now() - t0) / 1000).toFixed(0)} s (docker ${dockerVersion()})`);
    const t1 = Date.now();
    await drill.up();
    console.log(`compose drill: the pair up (fw-a master, fw-b synced) in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  }, 15 * 60_000);
  afterAll(() => {
    if (built) drill.down();
  }, 120_000);

  it('planned switchover (the master, fw-a, to fw-b, twinwall failover switchover on it): every flow survives with its NAT port', async () => {
    // As the pair came up: fw-a master, fw-b synced (a start on a loaded machine may still be
    // settling: once, 2 s after "the pair up", fw-a was not master any more).
    await drill.backAsBackup('fw-b', 30_000);
    let to: 'fw-a' | 'fw-b' = 'fw-b';
    const r = await drill.run('compose switchover', () => {
      // Whichever is master at the fault (the lab drills do the same).
      const from = drill.master();
      to = from === 'fw-a' ? 'fw-b' : 'fw-a';
      const s = drill.twinwall(from, 'failover', 'switchover');
      if (s.code !== 0) throw new Error(`switchover on ${from} failed: ${s.err}\n${drill.diagnostics()}`);
    });
    allSurvived(r);
    expect(r.probe.ports).toHaveLength(1);
    await drill.until(`${to} master after the switchover`, () => drill.role(to) === 'master', 5000);
  }, 180_000);

  it('docker kill of the master (fw-b): the other takes over, every flow survives; started again, it rejoins as backup and resyncs', async () => {
    const killed = drill.master();
    const other = killed === 'fw-a' ? 'fw-b' : 'fw-a';
    const r = await drill.run('compose docker kill', () => {
      drill.docker('kill', container(killed));
    });
    allSurvived(r);
    expect(r.probe.ports).toHaveLength(1);
    expect(drill.role(other)).toBe('master');
    drill.docker('start', container(killed));
    // fw-a started again preempts back after its preemptDelayMs: either way, fw-a master and fw-b synced.
    await drill.backAsBackup('fw-b', 60_000);
  }, 180_000);

  // The pause and disconnect drills run long enough to take in fw-a's preemption back (its
  // preemptDelayMs is 5 s) and the flows' recovery from it: that is a failover too.
  it('docker pause of the master (fw-a) for a second: fw-b takes over, fw-a yields on waking and preempts back; every flow survives', async () => {
    const r = await drill.run('compose docker pause', async () => {
      drill.docker('pause', container('fw-a'));
      await new Promise((res) => setTimeout(res, 1000));
      drill.docker('unpause', container('fw-a'));
    }, { seconds: 12 });
    allSurvived(r);
    await drill.backAsBackup('fw-b');
  }, 180_000);

  it('docker network disconnect of the master\'s inside and outside networks (fw-a, FAULT): fw-b takes over; connected again, fw-a preempts back; every flow survives', async () => {
    const r = await drill.run('compose network disconnect', () => drill.disconnectData('fw-a', 1500), { seconds: 16 });
    allSurvived(r);
    await drill.backAsBackup('fw-b');
  }, 180_000);
});
