import { stderrTails } from './apps';
import { Stack } from './stack';

/**
 * Declares a stack for a test file: started by `start`, killed after the file whatever happened,
 * and each failing test gets every app's stderr tail printed beside it.
 */
export function useStack(start: (stack: Stack) => Promise<void>): () => Stack {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = new Stack();
    await start(stack);
  });
  afterEach(() => {
    if ((globalThis as { __testFailed?: boolean }).__testFailed) {
      console.error(`${expect.getState().currentTestName} failed; app logs:\n${stderrTails()}`);
    }
  });
  afterAll(async () => {
    await stack?.stop();
  });
  return () => {
    if (!stack) throw new Error('stack not started');
    return stack;
  };
}
