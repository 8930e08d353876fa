/**
 * Lab agents run compiled (dist/), so lab tests build the project first. tsc still emits when some
 * file elsewhere has a type error; that is reported (not swallowed) and the test goes on, and an
 * agent that really is broken fails when it starts.
 */
import { execFileSync } from 'node:child_process';

export function compileProject(root: string): void {
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'pipe' });
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? e).split('\n').slice(0, 5).join('\n');
    console.warn(`lab: tsc reported errors (it emitted anyway):\n${out}`);
  }
}
