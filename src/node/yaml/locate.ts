/**
 * Where in a YAML file a JSON-pointer path points, so that every config and ruleset error can be
 * reported with its line and column as well as its path.
 */
import { isNode, type Document, type LineCounter } from 'yaml';

/** JSON pointer token unescaping (RFC 6901 section 4). */
function unescape(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** Line/column of the deepest existing node on `path` (the parent, for a missing property). */
export function locate(doc: Document, lc: LineCounter, path: string): { line: number; column: number } | undefined {
  const parts = path === '' ? [] : path.slice(1).split('/').map(unescape);
  for (let n = parts.length; n >= 0; n--) {
    const keys = parts.slice(0, n).map((p) => (/^[0-9]+$/.test(p) ? Number(p) : p));
    const node = n === 0 ? doc.contents : doc.getIn(keys, true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return undefined;
}
