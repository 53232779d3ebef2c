import { CairnError } from '../core/errors.js';
import { strictUtf8 } from '../log/records.js';
import type { LogRecord } from '../log/types.js';
import type { Logger } from '../core/logger.js';
import type { Processor, ProcessorContext, ProcessorRecord } from './processor-module.js';

/**
 * How the runtime calls a processor's optional parts (processor-module.ts): decoding values
 * before `apply`, and the init/close lifecycle around a run.
 *
 * Decoding turns the log's bytes into what `apply` takes, by the processor's own
 * declaration: its `decode`, else its `valueCodec`, default JSON.
 * Decoding happens here, in the runtime, not in the log: one topic can be read as JSON by
 * one processor and as bytes by another, and a value that fails to decode goes through the
 * same onBadRecord policy as a processor that throws.
 */
export type RecordDecoder = (record: LogRecord, partition: string) => ProcessorRecord;

export function recordDecoder(processor: Processor): RecordDecoder {
  const decodeValue = valueDecoder(processor);
  // A value that is not what the declared codec reads is bad data (CORRUPT, as a damaged
  // record); the processor's own decode throwing is its code refusing the record, like apply.
  const code = processor.decode ? 'PROCESSOR_FAILED' : 'CORRUPT';
  const what = processor.decode ? `processor ${processor.name} failed on` : 'cannot decode the record of';
  return (record, partition) => {
    if (record.value === null) return record as ProcessorRecord; // a tombstone: value null, never decoded
    let value: unknown;
    try {
      value = decodeValue(record.value);
    } catch (err) {
      throw new CairnError(code, `${what} ${partition} at LSN ${record.lsn}: decoding the value: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
        details: { partition, lsn: record.lsn },
      });
    }
    return { ...record, value };
  };
}

function valueDecoder(processor: Processor): (raw: Buffer) => unknown {
  if (processor.decode) return (raw) => processor.decode!(raw);
  switch (processor.valueCodec ?? 'json') {
    case 'bytes':
      return (raw) => raw;
    case 'string':
      return (raw) => utf8(raw);
    case 'json':
      return (raw) => {
        const text = utf8(raw);
        try {
          return JSON.parse(text) as unknown;
        } catch (err) {
          throw new Error(`the value is not JSON: ${(err as Error).message}`);
        }
      };
  }
}

/** Strict: toString() would turn bad bytes into U+FFFD and hand over a valid but wrong value. */
function utf8(raw: Buffer): string {
  const text = strictUtf8(raw);
  if (text === undefined) throw new Error('the value is not valid UTF-8');
  return text;
}

/** The init hook (Kafka Streams' Processor#init): a failure stops the run before any record. */
export async function initProcessor(processor: Processor, context: ProcessorContext): Promise<void> {
  try {
    await processor.init?.(context);
  } catch (err) {
    throw new CairnError('PROCESSOR_FAILED', `processor ${processor.name} failed to initialise for ${context.partition}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
      details: { partition: context.partition, hook: 'init' },
    });
  }
}

/** The close hook; its failure is logged, never allowed to hide how the run ended. */
export async function closeProcessor(processor: Processor, context: ProcessorContext, logger: Logger): Promise<void> {
  try {
    await processor.close?.(context);
  } catch (err) {
    logger.warn({ partition: context.partition, err }, `processor ${processor.name} failed to close`);
  }
}
