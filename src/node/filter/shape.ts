/**
 * Shape errors from the typebox schema, made readable. Value.Errors reports a failed union only as
 * "Expected union value"; here a union is resolved by the kind of the value given (string, number,
 * object with which keys...) and the errors of the one variant it was meant to be are reported, so
 * `{log: {level: loud}}` says what is wrong with `level` rather than "not a target".
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import type { RulesetIssue } from './errors.js';

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'Array';
  if (value === null) return 'Null';
  switch (typeof value) {
    case 'string':
      return 'String';
    case 'number':
      return Number.isInteger(value) ? 'Integer' : 'Number';
    case 'boolean':
      return 'Boolean';
    case 'object':
      return 'Object';
    default:
      return typeof value;
  }
}

function accepts(schema: TSchema, kind: string): boolean {
  const k = schema[Kind] as string;
  if (k === 'Union') return (schema.anyOf as TSchema[]).some((s) => accepts(s, kind));
  if (k === 'Literal') return kindOf(schema.const) === kind || (kind === 'Integer' && typeof schema.const === 'number');
  if (k === 'Record') return kind === 'Object';
  if (k === 'Number') return kind === 'Number' || kind === 'Integer';
  return k === kind;
}

function describe(schema: TSchema): string {
  const k = schema[Kind] as string;
  switch (k) {
    case 'Union':
      return (schema.anyOf as TSchema[]).map(describe).join(', ');
    case 'Literal':
      return JSON.stringify(schema.const);
    case 'Object':
      return `{${Object.keys(schema.properties as object).join(' | ')}: ...}`;
    case 'Array':
      return 'a list';
    default:
      return `a${/^[AEIOU]/.test(k) ? 'n' : ''} ${k.toLowerCase()}`;
  }
}

/** Object variants whose required keys are all present in `value`. */
function byKeys(variants: TSchema[], value: Record<string, unknown>): TSchema[] {
  return variants.filter((s) => {
    if (s[Kind] !== 'Object') return true;
    const req = (s.required as string[] | undefined) ?? [];
    return req.every((r) => r in value) && Object.keys(value).some((key) => key in (s.properties as object));
  });
}

/** Every shape error of `value` against `schema`, with JSON-pointer paths prefixed by `prefix`. */
export function shapeErrors(schema: TSchema, value: unknown, prefix = ''): RulesetIssue[] {
  const out: RulesetIssue[] = [];
  for (const e of Value.Errors(schema, value)) {
    const path = prefix + e.path;
    if (e.type !== ValueErrorType.Union) {
      out.push({ path, message: e.message });
      continue;
    }
    const kind = kindOf(e.value);
    let variants = (e.schema.anyOf as TSchema[]).filter((s) => accepts(s, kind));
    if (kind === 'Object' && variants.length > 1) variants = byKeys(variants, e.value as Record<string, unknown>);
    if (variants.length === 1 && variants[0][Kind] !== 'Literal') {
      out.push(...shapeErrors(variants[0], e.value, path));
    } else {
      const shown = e.value === undefined ? '' : ` (got ${JSON.stringify(e.value)?.slice(0, 60)})`;
      out.push({ path, message: `expected one of: ${describe(e.schema)}${shown}` });
    }
  }
  return out;
}
