/**
 * Interface names by ifindex from /sys/class/net, for the ruleset's `in`/`out` matches (the queue
 * gives ifindexes). Read once per unknown ifindex; the filter caches the answer per ruleset.
 */
import { readFileSync, readdirSync } from 'node:fs';

export function sysfsInterfaceName(root = '/sys/class/net'): (ifindex: number) => string | undefined {
  return (ifindex: number) => {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      // No sysfs (not Linux, or a container without it): no name, the rule does not match.
      return undefined;
    }
    for (const name of names) {
      try {
        if (Number(readFileSync(`${root}/${name}/ifindex`, 'utf8').trim()) === ifindex) return name;
      } catch {
        // The link went away between readdir and read: skip it.
        continue;
      }
    }
    return undefined;
  };
}
