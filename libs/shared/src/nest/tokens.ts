/** DI tokens of the shared core (plain strings so domain code never imports Nest). */
export const APP_CONFIG = 'APP_CONFIG';
export const JOURNAL = 'JOURNAL';
export const CLOCK = 'CLOCK';
export const AUDIT_PEERS = 'AUDIT_PEERS';
