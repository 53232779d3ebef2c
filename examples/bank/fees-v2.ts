import { bankProcessor } from './processor.js';

/**
 * The changed rule for a what-if replay: premium accounts (ids ending in 0 or 5) pay no
 * withdrawal fee; everyone else still pays 25 cents. Exactly the premium accounts that made
 * a withdrawal end up with different state.
 */
export const isPremium = (account: string): boolean => /[05]$/.test(account);

export default bankProcessor('bank-fees-v2', (account) => (isPremium(account) ? 0 : 25));
