/**
 * The filter: ruleset model (YAML, validated), compiled matcher, targets, counters, trace.
 * Public surface of src/node/filter; see README.md for the ruleset format.
 */
export { parseRuleset, loadRulesetFile } from './parse.js';
export { compileRuleset, CompiledRuleset, Chain } from './compile.js';
export type { CompileOptions, ConnCountSource } from './compile.js';
export { Filter } from './filter.js';
export type { FilterOptions, ChainCounters, RuleCounters } from './filter.js';
export { RulesetError, RulesetFileError } from './errors.js';
export type { RulesetIssue } from './errors.js';
export { Verdict, verdictNames, RejectKind, FilterResult } from './verdict.js';
export type { VerdictCode, RejectKindCode, PacketMeta, CtInfo } from './verdict.js';
export type { LogRecord, LogSink, TraceEvent, TraceSink } from './log.js';
export type { InterfaceResolver } from './ifaces.js';
export type { RulesetDoc, MatchDoc, RuleDoc, ChainDoc, SetDoc, TargetDoc } from './schema.js';
