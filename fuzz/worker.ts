// One run of a campaign on a worker thread (campaign.ts `--jobs`): the seed and the options come in workerData,
// the report goes back as one message, and the thread ends (a failure ends it with an 'error' event instead).
import { parentPort, workerData } from 'node:worker_threads';
import { runReport, type RunOptions } from './campaign';

const data = workerData as { seed: number; o: Omit<RunOptions, 'outDir'>; outDir: string };
void runReport(data.seed, { ...data.o, outDir: () => data.outDir }).then((report) => parentPort?.postMessage(report));
