/**
 * The governed variant of the quota race (quota-race.test.ts, quota-race-worker.ts): the racer is a
 * member of server g1 whose allowance comes from a role tier plus a grant, not the flat rule.
 */
import type { OperatorCeilings } from '../../src/engine/governance/api.ts';
import type { Requester } from '../../src/engine/request.ts';

export const GOVERNED_SCOPE = 'discord:g1' as const;
export const GOVERNED_RACER: Requester = { platform: 'discord', userId: 'racer', scope: 'g1', channelId: 'c1', roles: ['r-low', 'r-tier'] };
/** The flat rule (QUOTA_DAILY_UNITS) is 20; the tier and the grant make a different limit. */
export const RACE_CEILINGS: OperatorCeilings = { defaultDailyUnits: 20, maxDailyUnits: 50, allowUnlimited: false };
export const SERVER_UNITS = 3;
export const LOW_TIER = 5;
export const TIER_UNITS = 25;
export const GRANT_UNITS = 7;
/** What the racer may use today: the highest tier plus the grant. */
export const GOVERNED_LIMIT = TIER_UNITS + GRANT_UNITS;
