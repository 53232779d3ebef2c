import type { AppendRecord } from '../../src/log/types.js';

/** The bank processor's semantics as a plain fold over events: the model tests compare against. */
export function bankModel(events: AppendRecord[], upToIndex = events.length - 1, fee: (account: string, index: number) => number = () => 25): Map<string, unknown> {
  const accounts = new Map<string, { balance: number; count: number; fees: number }>();
  for (let i = 0; i <= upToIndex && i < events.length; i++) {
    const e = events[i]!;
    const key = textKey(e);
    const v = e.value as { type: string; amount: number };
    const a = accounts.get(key) ?? { balance: 0, count: 0, fees: 0 };
    const charged = v.type === 'withdrawal' ? fee(key, i) : 0;
    a.balance += v.type === 'deposit' ? v.amount : -v.amount - charged;
    a.fees += charged;
    a.count += 1;
    accounts.set(key, a);
  }
  return new Map([...accounts.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [`account/${k}`, v]));
}

/** Parses `cairn state dump` output into its LSN and a key → value map. */
export function parseDump(text: string): { lsn: number; entries: Map<string, unknown> } {
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const [head, ...rest] = lines;
  return { lsn: head!.lsn as number, entries: new Map(rest.map((r) => [r.key as string, r.value])) };
}

export function toJsonl(records: AppendRecord[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** Bank events are keyed by account name: a text key. */
export function textKey(e: AppendRecord): string {
  if (typeof e.key !== 'string') throw new Error(`bank event without a text key: ${JSON.stringify(e)}`);
  return e.key;
}
