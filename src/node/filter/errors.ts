/**
 * Errors of the filter module. Each failure has its own class and a stable `code` that the CLI and
 * the control API can show and match on.
 */

/** One problem found in a ruleset, located by the JSON pointer of the offending value. */
export interface RulesetIssue {
  /** JSON pointer into the ruleset document, e.g. `/chains/forward/rules/3/match/dport`. */
  path: string;
  message: string;
  /** 1-based position in the YAML text, when the ruleset came from YAML. */
  line?: number;
  column?: number;
}

function describe(issue: RulesetIssue): string {
  const where = issue.line !== undefined ? ` (line ${issue.line}, column ${issue.column ?? 1})` : '';
  return `${issue.path === '' ? '/' : issue.path}${where}: ${issue.message}`;
}

/**
 * A ruleset was refused as a whole. `errors` lists every problem found (not only the first), so an
 * operator can fix the file in one pass; nothing of the refused ruleset is ever applied.
 */
export class RulesetError extends Error {
  readonly code = 'RULESET_INVALID';
  readonly errors: RulesetIssue[];
  constructor(errors: RulesetIssue[], source?: string) {
    const head =
      `${source ? `${source}: ` : ''}ruleset refused, ${errors.length} error${errors.length === 1 ? '' : 's'} ` +
      '(fix them all and load again; the running ruleset is unchanged):';
    super(`${head}\n${errors.map((e) => `  ${describe(e)}`).join('\n')}`);
    this.name = 'RulesetError';
    this.errors = errors;
  }
}

/** The ruleset file could not be read at all (missing, unreadable). */
export class RulesetFileError extends Error {
  readonly code = 'RULESET_FILE_UNREADABLE';
  readonly path: string;
  constructor(path: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot read ruleset file ${path}: ${why}. Check the path and the file's permissions.`);
    this.name = 'RulesetFileError';
    this.path = path;
  }
}

/**
 * Internal: a value that does not parse; `check.ts` turns it into a RulesetIssue with the path of
 * the value. Never escapes the module.
 */
export class ValueSyntaxError extends Error {
  readonly code = 'RULESET_VALUE_SYNTAX';
  constructor(message: string) {
    super(message);
    this.name = 'ValueSyntaxError';
  }
}
