// DSA-like accelerator (Intel DSA Architecture Specification §3 shared work queues; Linux drivers/dma/idxd).

/** Default shared-WQ depth when the config does not say (idxd WQ size is per-WQ configurable). */
export const WQ_DEFAULT_DEPTH = 16;
/** Largest transfer size a descriptor may request (idxd WQ_DEFAULT_MAX_XFER = 2 MiB). */
export const WQ_MAX_TRANSFER_SIZE = 2 * 1024 * 1024;
/** Descriptors the engine executes per scheduler tick before yielding, so the event loop stays responsive. */
export const ENGINE_BATCH_PER_TICK = 8;
