/**
 * Ruleset text -> validated document. YAML syntax errors come with line and column; every schema
 * and semantic error is located too (line/column of the offending value), and all are reported at
 * once in one RulesetError.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { Builder } from './builder.js';
import { RulesetError, RulesetFileError, type RulesetIssue } from './errors.js';
import { lowerRuleset } from './lower.js';
import { RulesetSchema, type RulesetDoc } from './schema.js';
import { shapeErrors } from './shape.js';
import { compileNat } from '../nat/config.js';
import { locate } from '../yaml/locate.js';


/**
 * Parses and validates ruleset YAML. Returns the document (ready for compileRuleset) or throws
 * RulesetError with every error found. `source` (a file name) prefixes the message.
 */
export function parseRuleset(text: string, source?: string): RulesetDoc {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new RulesetError(
      doc.errors.map((e): RulesetIssue => {
        const pos = e.linePos?.[0];
        return { path: '', message: `YAML syntax: ${e.message}`, line: pos?.line, column: pos?.col };
      }),
      source,
    );
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  const b = new Builder();
  b.errors.push(...shapeErrors(RulesetSchema, value));
  lowerRuleset(value, b);
  compileNat(typeof value === 'object' && value !== null ? (value as { nat?: unknown }).nat : undefined, b.errors);
  if (b.errors.length > 0) {
    throw new RulesetError(b.errors.map((e) => ({ ...e, ...locate(doc, lc, e.path) })), source);
  }
  return value as RulesetDoc;
}

/** Reads and parses a ruleset file (RulesetFileError when unreadable, RulesetError when bad). */
export function loadRulesetFile(path: string): RulesetDoc {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RulesetFileError(path, e);
  }
  return parseRuleset(text, path);
}
