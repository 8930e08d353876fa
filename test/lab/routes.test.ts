/**
 * The data plane's route lookup against the kernel of a namespace of its own: an interface and a
 * route added after the start are used at once (the table refreshes on what `ip monitor`
 * reports, not on its fallback timer), and an interface replaced by another of the same name
 * (a new index, as `docker network connect` makes) is followed too. What cannot move an output
 * interface (a MAC set again, an address added: a takeover's claim) refreshes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { compileProject } from './compile.js';
import { Lab, labAvailable, labRequired, type LineAgent } from './netns.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const agentPath = fileURLToPath(new URL('../../dist/test/lab/agents/route-lookup.js', import.meta.url));
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

describe.skipIf(!avail.ok)('route lookup follows the kernel as it changes', () => {
  const lab = new Lab();
  let ns = '';
  let agent: LineAgent;
  const ifindex = (name: string): number => (JSON.parse(lab.exec(ns, 'ip', ['-j', 'link', 'show', name])) as { ifindex: number }[])[0].ifindex;
  /** Ask until the answer is `want` (the refresh is asynchronous), at most 2 s. */
  async function lookupBecomes(addr: string, want: number): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const got = Number(await agent.ask(addr));
      if (got === want || Date.now() - t0 > 2000) return got;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(() => {
    compileProject(root);
    ns = lab.netns('routes');
    agent = lab.agent(ns, process.execPath, [agentPath]);
  }, 120_000);
  afterAll(() => lab.cleanup());

  it('an interface and route added after the start, then the interface replaced (new index): looked up through the new one within ms', async () => {
    expect(Number(await agent.ask('10.99.0.1'))).toBe(0);
    lab.exec(ns, 'ip', ['link', 'add', 'inside0', 'type', 'veth', 'peer', 'name', 'peer0']);
    lab.exec(ns, 'ip', ['addr', 'add', '10.99.0.2/24', 'dev', 'inside0']);
    lab.exec(ns, 'ip', ['link', 'set', 'inside0', 'up']);
    lab.exec(ns, 'ip', ['link', 'set', 'peer0', 'up']);
    const first = ifindex('inside0');
    expect(await lookupBecomes('10.99.0.1', first)).toBe(first);
    lab.exec(ns, 'ip', ['link', 'del', 'inside0']);
    lab.exec(ns, 'ip', ['link', 'add', 'inside0', 'type', 'veth', 'peer', 'name', 'peer0']);
    lab.exec(ns, 'ip', ['addr', 'add', '10.99.0.2/24', 'dev', 'inside0']);
    lab.exec(ns, 'ip', ['link', 'set', 'inside0', 'up']);
    lab.exec(ns, 'ip', ['link', 'set', 'peer0', 'up']);
    const second = ifindex('inside0');
    expect(second).not.toBe(first);
    const t0 = Date.now();
    expect(await lookupBecomes('10.99.0.1', second)).toBe(second);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a takeover\'s claim (an address added, the MAC set again) refreshes nothing; a new route does', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const before = Number(await agent.ask('refreshes'));
    const mac = (JSON.parse(lab.exec(ns, 'ip', ['-j', 'link', 'show', 'inside0'])) as { address: string }[])[0].address;
    lab.exec(ns, 'ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'inside0']);
    lab.exec(ns, 'ip', ['link', 'set', 'dev', 'inside0', 'address', mac]);
    lab.exec(ns, 'ip', ['link', 'set', 'dev', 'inside0', 'mtu', '1400']);
    await new Promise((r) => setTimeout(r, 300));
    expect(Number(await agent.ask('refreshes'))).toBe(before);
    lab.exec(ns, 'ip', ['route', 'add', '10.98.0.0/16', 'via', '10.99.0.7']);
    expect(await lookupBecomes('10.98.1.1', ifindex('inside0'))).toBe(ifindex('inside0'));
    expect(Number(await agent.ask('refreshes'))).toBe(before + 1);
  });
});
