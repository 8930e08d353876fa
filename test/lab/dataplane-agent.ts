/**
 * The dataplane-node lab agent (agents/dataplane-node.ts) in fw1: started with a ruleset and
 * data plane options, refused loudly when the node does not start, quit at the end. Shared by
 * the data plane, NAT and IPv6 lab tests.
 */
import { fileURLToPath } from 'node:url';
import type { DataplaneOptions } from '../../src/node/dataplane/index.js';
import type { LineAgent } from './netns.js';
import type { LabTopology } from './topology.js';

/** The compiled agent (lab tests build the project first, see compile.ts). */
const agentPath = fileURLToPath(new URL('../../dist/test/lab/agents/dataplane-node.js', import.meta.url));

export async function startDataplaneAgent(topo: LabTopology, rulesPath: string, options: DataplaneOptions): Promise<LineAgent> {
  const node = topo.lab.agent(topo.ns.fw1, 'node', [agentPath, rulesPath]);
  const started = JSON.parse(await node.ask(`start ${JSON.stringify(options)}`, 15_000)) as { ok: boolean; message?: string };
  if (!started.ok) throw new Error(`the data plane node did not start in fw1: ${started.message ?? 'no reason given'}`);
  return node;
}

/** Quit the agent (its rules go); a failure is reported, not thrown, so cleanup goes on. */
export async function quitAgent(node: LineAgent | undefined): Promise<void> {
  if (node) await node.ask('quit').catch((e: unknown) => console.error(`lab: node quit: ${String(e)}`));
}
