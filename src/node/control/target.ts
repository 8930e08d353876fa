/**
 * What the control API acts on: the node (the daemon implements it; tests may too). Kept narrow so
 * the API never reaches into the node's wiring.
 */
import type { Engine } from '../engine/index.js';
import type { TraceHub } from './trace-hub.js';

export interface RulesetInfo {
  /** Where the running ruleset came from (file path, or the name given with POST /rules). */
  source: string;
  /** Its YAML text. */
  text: string;
  /** When it was put in force (ms since the epoch). */
  loadedAt: number;
}

export interface ControlTarget {
  readonly engine: Engine;
  readonly traces: TraceHub;
  /** Parses, validates, compiles and swaps in a ruleset; throws RulesetError and keeps the old one. */
  applyRuleset(text: string, source: string): void;
  ruleset(): RulesetInfo;
  /** Figures for GET /stats (engine, conntrack, data plane). */
  stats(): Record<string, unknown>;
}
