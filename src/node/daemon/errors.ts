/**
 * Errors of the daemon. Each has a stable `code` that the CLI prints and tests match on, and a
 * message that says what to do.
 */

/** One problem in the node config, located by the JSON pointer of the offending value. */
export interface ConfigIssue {
  /** JSON pointer into the config document, e.g. `/conntrack/maxEntries`. */
  path: string;
  message: string;
  /** 1-based position in the YAML text, when known. */
  line?: number;
  column?: number;
}

function describe(issue: ConfigIssue): string {
  const where = issue.line !== undefined ? ` (line ${issue.line}, column ${issue.column ?? 1})` : '';
  return `${issue.path === '' ? '/' : issue.path}${where}: ${issue.message}`;
}

/**
 * The node config was refused as a whole: `errors` lists every problem found, so the operator can
 * fix the file in one pass. Nothing was started or changed.
 */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly errors: ConfigIssue[];
  constructor(errors: ConfigIssue[], source?: string) {
    const head =
      `${source ? `${source}: ` : ''}config refused, ${errors.length} error${errors.length === 1 ? '' : 's'} ` +
      '(fix them all and start again; nothing was started):';
    super(`${head}\n${errors.map((e) => `  ${describe(e)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

/** The config file could not be read at all (missing, unreadable). */
export class ConfigFileError extends Error {
  readonly code = 'CONFIG_FILE_UNREADABLE';
  readonly path: string;
  constructor(path: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot read config file ${path}: ${why}. Check the path given to --config and the file's permissions.`);
    this.name = 'ConfigFileError';
    this.path = path;
  }
}

/** start() or stop() was called in the wrong state (start twice, stop before start). */
export class NodeStateError extends Error {
  readonly code = 'NODE_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'NodeStateError';
  }
}
