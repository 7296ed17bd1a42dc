// Accelerator driver constants (Intel DSA spec §3.3 / §5; Linux drivers/dma/idxd and the accel-config tests).
import { COMPLETION_RECORD_ALIGN, COMPLETION_RECORD_SIZE } from '@app/shared/dsa/dsa.constants';

export { COMPLETION_RECORD_ALIGN, COMPLETION_RECORD_SIZE };
/** ENQCMD returns ZF=1 when the shared work queue is full; user space retries a bounded number of times. */
export const ENQCMD_MAX_TRIES = 64;
/** Completion polls before the driver gives up with EIO (each poll yields first). */
export const COMPLETION_MAX_POLLS = 2000;
/** Status byte 0 = the device has not written the record yet (DSA §5.7). */
export const COMPLETION_STATUS_NONE = 0;
export const DESCRIPTOR_OPS = ['noop', 'memmove', 'fill', 'compare'] as const;
