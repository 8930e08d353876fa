import { describe, expect, it } from 'vitest';
import { chainRules, findJumps, installBatch, removeBatch } from '../../../src/node/dataplane/rules.js';
import { resolveDataplaneOptions } from '../../../src/node/dataplane/options.js';
import { DataplaneError } from '../../../src/node/dataplane/errors.js';
import { parseNfqueueProc } from '../../../src/node/dataplane/queue-proc.js';

describe('dataplane options', () => {
  it('fills defaults and sorts excluded ports', () => {
    const o = resolveDataplaneOptions({ queueNum: 3, dataInterfaces: ['eth1', 'eth2', 'eth1'], excludedUdpPorts: [3780, 112] });
    expect(o).toMatchObject({ queueNum: 3, dataInterfaces: ['eth1', 'eth2'], failOpen: false, chain: 'TWINWALL', excludedUdpPorts: [112, 3780], ipv6: true });
  });

  it('refuses bad options with every error at once, before anything changes', () => {
    let err: unknown;
    try {
      resolveDataplaneOptions({ queueNum: 70000, dataInterfaces: ['eth 1'], chain: '1bad', excludedUdpPorts: [0] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataplaneError);
    expect((err as DataplaneError).code).toBe('DP_BAD_OPTIONS');
    const m = (err as Error).message;
    for (const p of ['queueNum', 'dataInterfaces/0', 'chain', 'excludedUdpPorts/0']) expect(m).toContain(p);
  });
});

describe('dataplane kernel rules', () => {
  const o = resolveDataplaneOptions({ queueNum: 5, dataInterfaces: ['inside0', 'outside0'], excludedUdpPorts: [3780, 112] });

  it('excludes sync ports, keeps kernel conntrack out, then queues; bypass only when fail-open', () => {
    expect(chainRules(o)).toEqual(['-p udp -m multiport --dports 112,3780 -j RETURN', '-j CT --notrack', '-j NFQUEUE --queue-num 5']);
    expect(chainRules({ ...o, failOpen: true }).at(-1)).toBe('-j NFQUEUE --queue-num 5 --queue-bypass');
    const many = chainRules({ ...o, excludedUdpPorts: Array.from({ length: 20 }, (_, i) => 1000 + i) });
    expect(many.filter((r) => r.includes('multiport'))).toHaveLength(2);
  });

  it('never queues IPv6 neighbour discovery and MLD (the link would break under a drop policy)', () => {
    const v6 = chainRules(o, 6);
    expect(v6).toContain('-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN');
    expect(v6).toContain('-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN');
    expect(v6.indexOf('-p ipv6-icmp -m icmp6 --icmpv6-type 143 -j RETURN')).toBeLessThan(v6.indexOf('-j CT --notrack'));
    expect(chainRules(o, 4).some((r) => r.includes('icmp6'))).toBe(false);
  });

  it('finds leftover jumps to the chain and only those', () => {
    const listing = ['-P PREROUTING ACCEPT', '-N TWINWALL', '-N TWINWALL2', '-A PREROUTING -i eth9 -j TWINWALL', '-A PREROUTING -i eth1 -j TWINWALL2', '-A PREROUTING -p udp -j CT --notrack'].join('\n');
    expect(findJumps(listing, 'TWINWALL')).toEqual(['PREROUTING -i eth9 -j TWINWALL']);
  });

  it('installs in one batch: delete leftovers, flush, fill, jump from each data interface in order', () => {
    const b = installBatch(o, ['PREROUTING -i eth9 -j TWINWALL']).split('\n');
    expect(b[0]).toBe('*raw');
    expect(b).toContain(':TWINWALL - [0:0]');
    expect(b.indexOf('-D PREROUTING -i eth9 -j TWINWALL')).toBeLessThan(b.indexOf('-F TWINWALL'));
    expect(b.filter((l) => l.startsWith('-I PREROUTING 1'))).toEqual(['-I PREROUTING 1 -i outside0 -j TWINWALL', '-I PREROUTING 1 -i inside0 -j TWINWALL']);
    expect(b.at(-2)).toBe('COMMIT');
  });

  it('removes jumps, then the chain; nothing to do when gone', () => {
    expect(removeBatch('TWINWALL', ['PREROUTING -i a -j TWINWALL'], true)).toBe('*raw\n-D PREROUTING -i a -j TWINWALL\n-F TWINWALL\n-X TWINWALL\nCOMMIT\n');
    expect(removeBatch('TWINWALL', [], false)).toBe('');
  });
});

describe('/proc/net/netfilter/nfnetlink_queue', () => {
  it('parses each queue line', () => {
    const text = '   41  10365     0 2 65531     3     7       12 1\n    7   2222    5 2 65531     0     0      999 1\n';
    expect(parseNfqueueProc(text)).toEqual([
      { queueNum: 41, peerPortId: 10365, waiting: 0, copyMode: 2, copyRange: 65531, queueDropped: 3, userDropped: 7, idSequence: 12 },
      { queueNum: 7, peerPortId: 2222, waiting: 5, copyMode: 2, copyRange: 65531, queueDropped: 0, userDropped: 0, idSequence: 999 },
    ]);
    expect(parseNfqueueProc('garbage\n')).toEqual([]);
  });
});
