import type { Processor } from '../../src/index.js';

/**
 * Bank balances: each record is a deposit or a withdrawal (amounts in integer cents) keyed
 * by account. State per account: balance, number of operations and fees paid.
 * Fee rule v1: every withdrawal pays a flat 25 cents.
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

export function parseBankEvent(value: unknown): BankEvent {
  const v = value as Partial<BankEvent> | null;
  if (!v || (v.type !== 'deposit' && v.type !== 'withdrawal') || !Number.isSafeInteger(v.amount) || (v.amount as number) <= 0) {
    throw new Error(`not a bank event: ${JSON.stringify(value)}`);
  }
  return v as BankEvent;
}

/** Shared by both fee rules so a what-if replay differs only in the fee. */
export function bankProcessor(name: string, fee: (account: string, event: BankEvent) => number): Processor {
  return {
    name,
    async apply(record, state) {
      const event = parseBankEvent(record.value);
      const key = `account/${record.key}`;
      const account = ((await state.get(key)) as Account | undefined) ?? { balance: 0, count: 0, fees: 0 };
      const charged = event.type === 'withdrawal' ? fee(record.key, event) : 0;
      account.balance += event.type === 'deposit' ? event.amount : -event.amount - charged;
      account.fees += charged;
      account.count += 1;
      state.put(key, account);
    },
  };
}

export default bankProcessor('bank', () => 25);
