// Linux errno numbers (include/uapi/asm-generic/errno-base.h, errno.h) and the HTTP status each maps to (DESIGN §5).
export const ERRNO = {
  EPERM: { code: 1, status: 403 },
  ENOENT: { code: 2, status: 404 },
  ESRCH: { code: 3, status: 404 },
  EIO: { code: 5, status: 500 },
  EBADF: { code: 9, status: 400 },
  EAGAIN: { code: 11, status: 409 },
  ENOMEM: { code: 12, status: 507 },
  EACCES: { code: 13, status: 403 },
  EFAULT: { code: 14, status: 400 },
  EBUSY: { code: 16, status: 409 },
  EEXIST: { code: 17, status: 409 },
  ENODEV: { code: 19, status: 404 },
  EINVAL: { code: 22, status: 400 },
  // A resource limit, like ENOSPC/ENOMEM: the host's file table (fs.file-max), one process's fds (RLIMIT_NOFILE).
  ENFILE: { code: 23, status: 507 },
  EMFILE: { code: 24, status: 507 },
  ENOTTY: { code: 25, status: 501 },
  ENOSPC: { code: 28, status: 507 },
  ERANGE: { code: 34, status: 400 },
  EOVERFLOW: { code: 75, status: 400 },
  EOPNOTSUPP: { code: 95, status: 501 },
  EADDRINUSE: { code: 98, status: 409 },
  // A peer that did not connect, answer or keep sending in time (the REST transport's own timeouts).
  ETIMEDOUT: { code: 110, status: 504 },
} as const;

export type Errno = keyof typeof ERRNO;

export function isErrno(name: unknown): name is Errno {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(ERRNO, name);
}

/** The one error type of the project: a failure that carries a Linux errno. */
export class KernelError extends Error {
  readonly code: number;
  readonly status: number;

  /** `status` overrides the errno's HTTP status; only authentication uses it (401 + EACCES). */
  constructor(
    readonly errno: Errno,
    message: string,
    status?: number,
  ) {
    super(message);
    this.name = 'KernelError';
    this.code = ERRNO[errno].code;
    this.status = status ?? ERRNO[errno].status;
  }
}

/** The problem body every app returns on failure (DESIGN §5). */
export interface ProblemBody {
  errno: Errno;
  code: number;
  message: string;
  traceId: string;
}

/**
 * Whether `err` is a call its peer never answered, as the REST door raises it (http/rest-client.ts transportError:
 * EIO 502 when the connection failed, ETIMEDOUT 504 when the answer did not come in time; the in-process stack
 * answers for an app that is down with the same EIO 502).
 */
export function noAnswer(err: unknown): boolean {
  return err instanceof KernelError && ((err.errno === 'EIO' && err.status === 502) || (err.errno === 'ETIMEDOUT' && err.status === 504));
}
