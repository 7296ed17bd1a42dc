// `npm run replay -- --export <data-dir> <recording-dir>`: a recording from a stack's data directory — every
// journal found there, merged in causal order, each database copied (as `<journal>.db`), and the stack's
// config (the data dir's config.json if a runner wrote one, else the defaults with what kernel.boot names).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyDatabase, findJournals, readJournalFile } from './databases';
import { CONFIG_FILE, DEFAULT_CONFIG, type RecordedRow, type StackConfig, toRecorded, writeRecording } from './recording';

export function exportDataDir(dataDir: string, outDir: string, override: Partial<StackConfig> = {}): { rows: number; journals: string[] } {
  const files = findJournals(dataDir);
  if (!files.has('host-kernel')) throw new Error(`${dataDir}: no host-kernel.db found`);
  mkdirSync(outDir, { recursive: true });
  const journals = new Map<string, RecordedRow[]>();
  for (const [name, file] of files) {
    copyDatabase(file, join(outDir, `${name}.db`));
    journals.set(name, readJournalFile(file).map((e) => toRecorded(name, e)));
  }
  const written = join(dataDir, CONFIG_FILE);
  let config: StackConfig = existsSync(written) ? { ...DEFAULT_CONFIG, ...(JSON.parse(readFileSync(written, 'utf8')) as Partial<StackConfig>) } : { ...DEFAULT_CONFIG, seed: null };
  const boot = journals.get('host-kernel')?.find((r) => r.operation === 'kernel.boot');
  const memoryMiB = (boot?.args as { memoryMiB?: number } | undefined)?.memoryMiB;
  if (!existsSync(written) && memoryMiB) config = { ...config, memoryMiB };
  config = { ...config, ...override };
  const rows = writeRecording(outDir, journals, config);
  return { rows: rows.length, journals: [...journals.keys()] };
}
