/**
 * Payload and query schemas of the control API. A request that does not fit is refused whole with
 * every error's path (`/query/port`, `/body/text`...) before anything changes.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ApiError, type ApiIssue } from './errors.js';

const Port = Type.String({ pattern: '^[0-9]{1,5}$', description: 'port number' });

export const CtListQuery = Type.Object(
  {
    proto: Type.Optional(Type.String({ pattern: '^[a-z0-9]{1,10}$', description: 'tcp, udp, icmp, icmpv6 or a number' })),
    src: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'original source address or CIDR' })),
    dst: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'original destination address or CIDR' })),
    sport: Type.Optional(Port),
    dport: Type.Optional(Port),
    /** Either port of the original tuple. */
    port: Type.Optional(Port),
  },
  { additionalProperties: false },
);
export type CtListQueryDoc = Static<typeof CtListQuery>;

export const EmptyQuery = Type.Object({}, { additionalProperties: false });

export const EntryId = Type.String({ pattern: '^[0-9]{1,10}$', description: 'entry id (as `ct list` shows it)' });

export const RulesApplyBody = Type.Object(
  {
    /** Ruleset YAML (the format of src/node/filter/README.md). */
    text: Type.String({ minLength: 1 }),
    /** Name shown in errors and in GET /rules (the file name the CLI read). */
    source: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  { additionalProperties: false },
);
export type RulesApplyBodyDoc = Static<typeof RulesApplyBody>;

/**
 * A saved table (`ct save`) sent back. Only `record` of each entry is read: the readable fields
 * beside it are for people and jq, and may be left out.
 */
export const CtRestoreBody = Type.Object(
  {
    format: Type.String({ description: 'twinwall-ct-save/2' }),
    entries: Type.Array(
      Type.Object({ record: Type.String({ description: 'the entry as base64 (a 192-byte record)' }) }, { additionalProperties: true }),
    ),
  },
  { additionalProperties: true },
);
export type CtRestoreBodyDoc = Static<typeof CtRestoreBody>;

export const TraceBody = Type.Object(
  { selector: Type.Record(Type.String(), Type.Unknown(), { description: 'a rule match object, e.g. {"proto":"tcp","dport":80}' }) },
  { additionalProperties: false },
);
export type TraceBodyDoc = Static<typeof TraceBody>;

/** Checks `value` against `schema`; ApiError 400 REQUEST_INVALID with every issue otherwise. */
export function validate<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const seen = new Set<string>();
  const errors: ApiIssue[] = [];
  for (const e of Value.Errors(schema, value)) {
    const path = `/${where}${e.path}`;
    if (seen.has(path + e.message)) continue;
    seen.add(path + e.message);
    errors.push({ path, message: e.message });
  }
  throw new ApiError(400, 'REQUEST_INVALID', `request refused: ${errors.length} error(s) in the ${where}; nothing was changed`, errors);
}
