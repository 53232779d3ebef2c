/**
 * One restore in a process of its own, so its peak RSS is the restore's alone (the parent
 * holds the benchmark's state). Prints {"ms", "maxRssMiB"} as one JSON line.
 * Usage: node --import tsx test/bench/restore-child.ts <store url> <endpoint> <partition> <target dir>
 */
import { normaliseConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Cairn } from '../../src/runtime/cairn.js';

const [url, endpoint, partition, target] = process.argv.slice(2) as [string, string, string, string];
const config = normaliseConfig({ store: { url, endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true }, stateDir: './state' }, process.cwd(), 'bench');
const cairn = new Cairn(config, { logger: silentLogger });
const t0 = performance.now();
await cairn.snapshots.restore({ partition, targetDir: target, concurrency: 64 });
const ms = performance.now() - t0;
await cairn.close();
process.stdout.write(`${JSON.stringify({ ms, maxRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
