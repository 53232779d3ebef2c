import type { Processor, ProcessorRecord } from 'cairn-state';

/**
 * Bank balances: each record is a deposit or a withdrawal (amounts in integer cents) keyed
 * by account. State per account: balance, number of operations and fees paid.
 * Fee rule v1: every withdrawal pays a flat 25 cents. A tombstone (a record without a value)
 * closes the account: its state is deleted.
 */
export interface BankEvent {
  type: 'deposit' | 'withdrawal';
  amount: number;
}

export interface Account {
  balance: number;
  count: number;
  fees: number;
}

/**
 * Values arrive as parsed JSON (the default valueCodec); whether one is a bank event is
 * checked here, so a record that is JSON but not an event stops the partition (or is
 * skipped, by runtime.onBadRecord) naming its LSN.
 */
export function parseBankEvent(value: unknown): BankEvent {
  if (typeof value === 'object' && value !== null && 'type' in value && 'amount' in value) {
    const { type, amount } = value;
    if ((type === 'deposit' || type === 'withdrawal') && typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0) return { type, amount };
  }
  throw new Error(`not a bank event: ${JSON.stringify(value)}`);
}

function accountOf(record: ProcessorRecord): string {
  if (record.key === null || record.key === '') throw new Error(`record at LSN ${record.lsn} names no account (its key is ${record.keyBytes ? 'not text' : 'missing'})`);
  return record.key;
}

/** Shared by both fee rules so a what-if replay differs only in the fee. */
export function bankProcessor(name: string, fee: (account: string, event: BankEvent) => number): Processor<unknown, Account> {
  return {
    name,
    async apply(record, state) {
      const id = accountOf(record);
      const key = `account/${id}`;
      if (record.value === null) {
        state.del(key);
        return;
      }
      const event = parseBankEvent(record.value);
      const account = (await state.get(key)) ?? { balance: 0, count: 0, fees: 0 };
      const charged = event.type === 'withdrawal' ? fee(id, event) : 0;
      account.balance += event.type === 'deposit' ? event.amount : -event.amount - charged;
      account.fees += charged;
      account.count += 1;
      state.put(key, account);
    },
  };
}

export default bankProcessor('bank', () => 25);
