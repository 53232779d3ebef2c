import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { rawKafka } from './kafka.js';

/**
 * Kafka's own Java tools (kafka-tools, on KAFKA_TOOLS_CLASSPATH from test/services/kafka.sh) as
 * test clients: records written by a producer we did not write, groups listed by a tool we did
 * not write. Throws (never skips) when the classpath is missing.
 */

/** Start-up flags for short-lived tools: class data sharing, C1 only, a small heap. */
const JVM_FLAGS = ['-Xshare:auto', '-XX:TieredStopAtLevel=1', '-Xms64m', '-Xmx256m', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn'];
const TOOL_TIMEOUT_MS = 60_000;

/**
 * How ConsoleProducer's LineMessageReader reads one line: `headers␞key␟value`, headers as
 * `k␜v␝k␜v`. Control characters no test record carries, so keys and values need no escaping;
 * the null marker stands for a null key, a null value or "no headers" (an empty headers field
 * would be read as one header without a separator and rejected).
 */
const KEY_SEPARATOR = '\u001f';
const HEADERS_DELIMITER = '\u001e';
const HEADERS_SEPARATOR = '\u001d'; // a regex to the reader: a control character is literal there
const HEADER_KEY_SEPARATOR = '\u001c';
const NULL_MARKER = '\u0002null\u0003';
const RESERVED = /[\n\r\u0002\u0003\u001c-\u001f]/;

export interface JavaRecord {
  key: string | null;
  value: string | null;
  headers?: Array<[string, string]>;
}

export interface JavaProduceOptions {
  brokers: string;
  topic: string;
  /**
   * ConsoleProducer has no partition option and Kafka ships no fixed-partition partitioner, so
   * this only asserts the topic has exactly one partition and it is this one (0).
   */
  partition?: number;
  records: JavaRecord[];
  compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
  /** Producer properties, applied after (so over) the helper's own. */
  extraProps?: Record<string, string>;
}

/** A variable kafka.sh prints, as test/helpers/kafka.ts reads KAFKA_BROKERS. */
export function kafkaEnv(name: string): string {
  const status = inject('kafka');
  const value = (status?.ok ? status.env[name] : undefined) ?? process.env[name];
  if (!value) {
    const reason = status?.ok === false ? status.reason : process.env.CAIRN_KAFKA_ERROR;
    throw new Error(`Kafka not available: ${reason ?? `${name} not set by the global setup (test/services/kafka.sh start prints it; an older broker setup lacks it)`}`);
  }
  return value;
}

/**
 * Produces `records` in order (acks=all, idempotent) with Kafka's ConsoleProducer and waits for
 * it to exit. Keys, values and header strings may be empty ("" is distinct from null) but
 * cannot contain line breaks or the reader's separators (U+0002, U+0003, U+001C..U+001F).
 */
export async function javaProduce(opts: JavaProduceOptions): Promise<void> {
  const classpath = kafkaEnv('KAFKA_TOOLS_CLASSPATH');
  if (opts.partition !== undefined) await assertOnlyPartition(opts.brokers, opts.topic, opts.partition);
  const input = opts.records.map(toLine).join('');
  const dir = await mkdtemp(join(tmpdir(), 'cairn-console-producer-'));
  try {
    // A properties file rather than --property: \u escapes keep the control characters intact.
    const readerConfig = join(dir, 'reader.properties');
    const reader = {
      'parse.key': 'true',
      'key.separator': KEY_SEPARATOR,
      'parse.headers': 'true',
      'headers.delimiter': HEADERS_DELIMITER,
      'headers.separator': HEADERS_SEPARATOR,
      'headers.key.separator': HEADER_KEY_SEPARATOR,
      'null.marker': NULL_MARKER,
    };
    await writeFile(readerConfig, Object.entries(reader).map(([k, v]) => `${k}=${escapeProperty(v)}\n`).join(''));
    const producer: Record<string, string> = {
      acks: 'all',
      'enable.idempotence': 'true',
      // The tool's 1.5 s request timeout is too tight for a busy two-core machine.
      'request.timeout.ms': '30000',
      // A missing topic fails within the helper's bound instead of blocking for a minute.
      'max.block.ms': '20000',
      ...opts.extraProps,
    };
    const args = ['--bootstrap-server', opts.brokers, '--topic', opts.topic, '--reader-config', readerConfig];
    // --compression-codec, not compression.type: the tool overwrites compression.type with it.
    args.push('--compression-codec', opts.compression ?? 'none');
    for (const [k, v] of Object.entries(producer)) args.push('--producer-property', `${k}=${v}`);
    const { stderr } = await runTool(classpath, 'org.apache.kafka.tools.ConsoleProducer', args, input);
    // Asynchronous send failures are only logged (exit code 0): ErrorLoggingCallback.
    if (/Error when sending message|\] ERROR /.test(stderr)) {
      throw new Error(`ConsoleProducer failed to send to ${opts.topic}:\n${stderr.trim()}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The ids of all consumer groups, as Kafka's ConsumerGroupCommand --list reports them. */
export async function consumerGroups(brokers: string): Promise<string[]> {
  const classpath = kafkaEnv('KAFKA_TOOLS_CLASSPATH');
  const { stdout } = await runTool(classpath, 'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand', ['--bootstrap-server', brokers, '--list']);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

function toLine(record: JavaRecord, index: number): string {
  const fields = [record.key, record.value, ...(record.headers ?? []).flat()];
  for (const field of fields) {
    if (field !== null && RESERVED.test(field)) {
      throw new Error(`javaProduce: record ${index} has a line break or a reserved control character (U+0002, U+0003, U+001C..U+001F), which ConsoleProducer cannot carry`);
    }
  }
  const headers = record.headers?.length ? record.headers.map(([k, v]) => `${k}${HEADER_KEY_SEPARATOR}${v}`).join(HEADERS_SEPARATOR) : NULL_MARKER;
  return `${headers}${HEADERS_DELIMITER}${record.key ?? NULL_MARKER}${KEY_SEPARATOR}${record.value ?? NULL_MARKER}\n`;
}

/** java.util.Properties syntax: every non-alphanumeric character as a \u escape. */
function escapeProperty(value: string): string {
  return value.replace(/[^A-Za-z0-9.]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

async function assertOnlyPartition(brokers: string, topic: string, partition: number): Promise<void> {
  const admin = rawKafka(brokers.split(',')).admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = topics[0]?.partitions.map((p) => p.partitionId) ?? [];
    if (partitions.length !== 1 || partitions[0] !== partition) {
      throw new Error(
        `javaProduce: ConsoleProducer cannot target partition ${partition} of ${topic} (partitions ${partitions.join(',')}); produce to a one-partition topic`,
      );
    }
  } finally {
    await admin.disconnect();
  }
}

/** Runs a tool's main class; rejects on a non-zero exit (with stderr) or after 60 s (killed). */
function runTool(classpath: string, mainClass: string, args: string[], stdin = ''): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('java', [...JVM_FLAGS, '-cp', classpath, mainClass, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const name = mainClass.slice(mainClass.lastIndexOf('.') + 1);
    const timer = setTimeout(() => child.kill('SIGKILL'), TOOL_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${name}: cannot run java: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else if (signal === 'SIGKILL') reject(new Error(`${name} did not finish within ${TOOL_TIMEOUT_MS / 1000} s (killed); stderr:\n${stderr.trim()}`));
      else reject(new Error(`${name} exited with ${code ?? signal}; stderr:\n${stderr.trim()}`));
    });
    // A tool that exits early closes its stdin; the error is in its exit code and stderr.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin, 'utf8');
  });
}
