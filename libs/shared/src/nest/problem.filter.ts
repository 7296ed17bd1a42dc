import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { Request, Response } from 'express';
import { KernelError, type Errno, ERRNO } from '../errno';
import type { Logger } from '../log/logger';
import { currentTrace, newTraceId, parseTraceparent } from '../trace';

/** HTTP errors Nest or Express raise before our code runs, as the errno a kernel would give. */
function errnoForHttp(status: number): Errno {
  if (status === 404) return 'ENOENT';
  if (status === 401 || status === 403) return 'EACCES';
  if (status === 413) return 'EOVERFLOW';
  if (status === 405) return 'EOPNOTSUPP';
  return 'EINVAL';
}

/**
 * The one exception filter: a KernelError becomes the problem body of DESIGN §5 with its errno's
 * status; anything Nest/Express raised for a bad request becomes EINVAL (or ENOENT for an unknown
 * route). Only a genuine bug is EIO/500, and it is logged.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request>();
    let errno: Errno;
    let status: number;
    let message: string;
    if (exception instanceof KernelError) {
      errno = exception.errno;
      status = exception.status;
      message = exception.message;
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      errno = errnoForHttp(status);
      status = status === 401 ? 401 : ERRNO[errno].status;
      const body = exception.getResponse();
      message =
        typeof body === 'object' && body && 'message' in body
          ? [body.message].flat().join('; ')
          : exception.message;
    } else if (isBodyParserError(exception)) {
      errno = exception.status === 413 ? 'EOVERFLOW' : 'EINVAL';
      status = ERRNO[errno].status;
      message = `malformed request body: ${exception.message}`;
    } else {
      errno = 'EIO';
      status = 500;
      message = 'internal error';
      this.log.error({ err: exception, method: req.method, url: req.url }, 'internal error');
    }
    if (res.headersSent) return;
    res.status(status).json({ errno, code: ERRNO[errno].code, message, traceId: currentTrace()?.traceId ?? parseTraceparent(req.header('traceparent'))?.traceId ?? newTraceId() });
  }
}

function isBodyParserError(e: unknown): e is { status: number; message: string; type: string } {
  return typeof e === 'object' && e !== null && 'type' in e && 'status' in e && typeof (e as { status: unknown }).status === 'number';
}
