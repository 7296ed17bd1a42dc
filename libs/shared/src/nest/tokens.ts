/** DI tokens of the shared core (plain strings so domain code never imports Nest). */
export const APP_CONFIG = 'APP_CONFIG';
export const JOURNAL = 'JOURNAL';
export const CLOCK = 'CLOCK';
export const AUDIT_PEERS = 'AUDIT_PEERS';
export const METRICS = 'METRICS';
export const LOGGER = 'LOGGER';
/** What `/v1/audit/state` and the /ui state view show: each app sets its reader (kernel-state, VMs, guest status). */
export const STATE_VIEW = 'STATE_VIEW';
