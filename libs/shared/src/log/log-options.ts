/** pino's levels; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  app: string;
  level: LogLevel;
  pretty: boolean;
  /** Where lines go (default stderr); tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}
