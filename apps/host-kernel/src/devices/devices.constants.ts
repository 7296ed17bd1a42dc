// DSA-like accelerator (Intel DSA Architecture Specification §3 shared work queues; Linux drivers/dma/idxd).

/** Default shared-WQ depth when the config does not say (idxd WQ size is per-WQ configurable). */
export const WQ_DEFAULT_DEPTH = 16;
/** Largest transfer size a descriptor may request (idxd WQ_DEFAULT_MAX_XFER = 2 MiB). */
export const WQ_MAX_TRANSFER_SIZE = 2 * 1024 * 1024;
/** Descriptors the engine executes per scheduler tick before yielding, so the event loop stays responsive. */
export const ENGINE_BATCH_PER_TICK = 8;
/** Engines per device: a DSA 1.0 device has 4 (idxd max_engines); a descriptor blocked on a page request holds one. */
export const ENGINES_PER_DEVICE = 4;
/** Page-request rounds a block-on-fault descriptor makes before a page that still faults ends it with status 2. */
export const PRI_MAX_ROUNDS = 3;
/**
 * A page still faulting after a `success` answer (the host may answer success without mapping, as the IOMMU does
 * when its queue overflows) is requested again only after this back-off, doubled each round: the device retries later.
 */
export const PRI_RETRY_BACKOFF_MS = 100;
