/**
 * A real Prometheus (Debian's) in one of the lab's namespaces, scraping the pair's /metrics with the
 * alert rules of deploy/, and its HTTP API read back with curl from the same namespace. For the lab
 * tests that check what an operator's Prometheus sees (daemon-failover, the drills).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabTopology } from './topology.js';

const root = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));

type Node = Parameters<LabTopology['exec']>[0];
export interface Sample { metric: Record<string, string>; value: [number, string] }
export interface Series { metric: Record<string, string>; values: [number, string][] }

export class LabPrometheus {
  #child: ChildProcess | null = null;
  readonly #dir: string;
  readonly #url: string;

  /**
   * `dir`: a folder of the test's own (config and data go in dir/prometheus); `targets`:
   * host:port of each node's /metrics; `scrapeMs`: the scrape and rule interval.
   */
  constructor(readonly topo: LabTopology, readonly node: Node, dir: string, readonly targets: string[], readonly scrapeMs = 1000, port = 9790) {
    this.#dir = join(dir, 'prometheus');
    this.#url = `http://127.0.0.1:${port}`;
  }

  start(): void {
    mkdirSync(this.#dir, { recursive: true });
    copyFileSync(join(root, 'deploy/prometheus/twinwall-rules.yml'), join(this.#dir, 'twinwall-rules.yml'));
    const every = `${this.scrapeMs}ms`;
    writeFileSync(join(this.#dir, 'prometheus.yml'), [
      `global: { scrape_interval: ${every}, scrape_timeout: ${every}, evaluation_interval: ${every} }`,
      'rule_files: [twinwall-rules.yml]',
      'scrape_configs:',
      '  - job_name: twinwall',
      `    static_configs: [{ targets: [${this.targets.map((t) => `"${t}"`).join(', ')}] }]`,
      '',
    ].join('\n'));
    this.#child = spawn('ip', ['netns', 'exec', this.topo.ns[this.node], 'prometheus', `--config.file=${join(this.#dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(this.#dir, 'data')}`, `--web.listen-address=${this.#url.slice('http://'.length)}`], { stdio: 'ignore' });
  }

  #get<T>(path: string, params: Record<string, string>): T | null {
    const args = ['-sS', '--max-time', '5', '--get'];
    for (const [k, v] of Object.entries(params)) args.push('--data-urlencode', `${k}=${v}`);
    const r = this.topo.try(this.node, 'curl', [...args, `${this.#url}${path}`]);
    // Until Prometheus is ready it answers with a text, not JSON: nothing yet.
    if (r.code !== 0 || !r.out.startsWith('{')) return null;
    return (JSON.parse(r.out) as { data: T }).data;
  }

  /** An instant query (empty until Prometheus is up). */
  query(q: string): Sample[] {
    return this.#get<{ result: Sample[] }>('/api/v1/query', { query: q })?.result ?? [];
  }

  /** The value of `q` for the node labelled `node`, if any. */
  valueOf(q: string, node: string): string | undefined {
    return this.query(q).find((x) => x.metric.node === node)?.value[1];
  }

  /** A range query from `start` to `end` (unix seconds) at `stepS`. */
  range(q: string, start: number, end: number, stepS: number): Series[] {
    return this.#get<{ result: Series[] }>('/api/v1/query_range', { query: q, start: String(start), end: String(end), step: String(stepS) })?.result ?? [];
  }

  rules(): { name: string }[] {
    return this.#get<{ groups: { rules: { name: string }[] }[] }>('/api/v1/rules', {})?.groups.flatMap((g) => g.rules) ?? [];
  }

  alerts(): { labels: { alertname: string }; state: string }[] {
    return this.#get<{ alerts: { labels: { alertname: string }; state: string }[] }>('/api/v1/alerts', {})?.alerts ?? [];
  }

  stop(): void {
    this.#child?.kill('SIGKILL');
    this.#child = null;
  }
}
