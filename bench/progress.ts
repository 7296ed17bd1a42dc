// The shared progress bar of long commands (scripts/progress.js: cli-progress on a terminal, tenths elsewhere),
// typed for the benchmarks; it writes between measured stages, never inside one.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

function repoRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'nest-cli.json'))) return dir;
  throw new Error(`no nest-cli.json above ${__dirname}`);
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const shared = require(join(repoRoot(), 'scripts', 'progress.js')) as { progress: (label: string, total: number) => Progress };

export const progress = shared.progress;
