import type { LogConfig } from '../core/config.js';
import { CairnError } from '../core/errors.js';
import { EmbeddedLog } from './embedded.js';
import type { Log } from './types.js';

export type { AppendRecord, Log, LogCapabilities, LogInfo, LogRecord, ReadOptions } from './types.js';
export { EmbeddedLog, type EmbeddedLogOptions } from './embedded.js';

/**
 * The log a configuration names. Synchronous: backends connect lazily on first use, so
 * building one never fails for reasons other than the configuration itself.
 */
export function createLog(config: LogConfig, options: { sync?: boolean } = {}): Log {
  switch (config.type) {
    case 'embedded':
      return new EmbeddedLog({ dir: config.dir, ...(options.sync !== undefined ? { sync: options.sync } : {}) });
    case 'kafka':
      throw new CairnError('BAD_INPUT', 'kafka log not available yet');
  }
}
