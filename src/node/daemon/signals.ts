/**
 * The daemon's signals: SIGHUP reloads the ruleset (a bad one is logged, the old one stays);
 * SIGTERM and SIGINT stop the node cleanly (data plane rules removed). A second SIGTERM/SIGINT
 * while stopping is logged and ignored: stop() is already removing the rules.
 */
import type { FirewallNode } from './node.js';

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/**
 * Handles signals for `node` until it has stopped; resolves then (rejects when stop() failed).
 * `source` is the process unless a test passes an emitter.
 */
export function runUntilSignal(node: FirewallNode, source: SignalSource = process): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const hup = (): void => void node.reload();
    const term = (): void => {
      if (node.state === 'stopping') {
        node.log.warn('stop already in progress');
        return;
      }
      node.log.info('stop requested by signal');
      node.stop().then(done(resolve), done(reject));
    };
    const done = <T>(settle: (v: T) => void) => (v: T): void => {
      source.off('SIGHUP', hup);
      source.off('SIGTERM', term);
      source.off('SIGINT', term);
      settle(v);
    };
    source.on('SIGHUP', hup);
    source.on('SIGTERM', term);
    source.on('SIGINT', term);
  });
}
