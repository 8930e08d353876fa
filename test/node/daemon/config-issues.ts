/** For the config tests: the problems a refused config reports (fails the test if it is accepted). */
import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/node/daemon/index.js';

export function configIssues(text: string, baseDir: string): { path: string; message: string; line?: number; column?: number }[] {
  try {
    parseConfig(text, baseDir, 'node.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).errors;
  }
  throw new Error('config was accepted');
}
