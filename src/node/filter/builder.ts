/**
 * Accumulates what lowering a ruleset produces: errors with their paths, and the shared numeric
 * tables that rule records point into (port ranges, interface patterns, buckets, hashlimit tables,
 * LOG specs, sets). Config-time only.
 */
import { RulesetError, ValueSyntaxError, type RulesetIssue } from './errors.js';
import { CompiledSet } from './sets.js';
import type { IfacePattern } from './values.js';

export interface BucketSpec {
  perMs: number;
  burst: number;
}

export interface HashLimitSpec extends BucketSpec {
  capacity: number;
  expireMs: number;
  prefix4: number;
  prefix6: number;
}

export interface LogSpec {
  prefix: string;
  level: string;
  /** Token bucket index of this LOG's rate limit. */
  bucket: number;
}

/** Hooks a chain is reached from. */
export const Hook = { RAW: 1, FORWARD: 2 } as const;

export class Builder {
  readonly errors: RulesetIssue[] = [];
  readonly portRanges: number[] = [];
  readonly ifPatterns: IfacePattern[][] = [];
  readonly buckets: BucketSpec[] = [];
  readonly hashlimits: HashLimitSpec[] = [];
  readonly logs: LogSpec[] = [];
  readonly sets: CompiledSet[] = [];
  readonly setIndex = new Map<string, number>();
  statCount = 0;

  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  /** Runs a value parser; a ValueSyntaxError (or address error) becomes an error at `path`. */
  parse<R>(path: string, fn: () => R): R | undefined {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ValueSyntaxError || (e instanceof Error && 'code' in e)) {
        this.error(path, e.message);
        return undefined;
      }
      throw e;
    }
  }

  addPorts(pairs: number[]): number {
    const off = this.portRanges.length / 2;
    this.portRanges.push(...pairs);
    return off;
  }

  addIfPattern(p: IfacePattern[]): number {
    this.ifPatterns.push(p);
    return this.ifPatterns.length - 1;
  }

  addBucket(spec: BucketSpec): number {
    this.buckets.push(spec);
    return this.buckets.length - 1;
  }

  addSet(set: CompiledSet): number {
    this.sets.push(set);
    return this.sets.length - 1;
  }

  /** Throws RulesetError listing every error collected so far, if any. */
  throwIfErrors(source?: string): void {
    if (this.errors.length > 0) throw new RulesetError(this.errors, source);
  }
}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON pointer segment escaping (RFC 6901). */
export const seg = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');
