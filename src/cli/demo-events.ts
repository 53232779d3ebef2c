import type { AppendRecord } from '../log/types.js';

/** Deterministic bank events (mulberry32), so demos and tests can be replayed exactly. */
export function bankEvents(count: number, seed = 1, accounts = 200): AppendRecord[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: AppendRecord[] = [];
  for (let i = 0; i < count; i++) {
    const account = `acct-${String(Math.floor(rand() * accounts)).padStart(4, '0')}`;
    const deposit = rand() < 0.7;
    const amount = 100 + Math.floor(rand() * (deposit ? 9900 : 4900));
    out.push({ key: account, value: { type: deposit ? 'deposit' : 'withdrawal', amount } });
  }
  return out;
}
