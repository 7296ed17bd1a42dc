import { type ArgumentMetadata, Injectable, type PipeTransform, ValidationPipe } from '@nestjs/common';
import { KernelError } from '../errno';
import { checkJsonDepth } from '../json-guard';
import { checkRequestShape, compiledBody, invalidRequest, TRANSFORM_OPTIONS, VALIDATOR_OPTIONS } from './dto-check';

const VALIDATION = {
  ...VALIDATOR_OPTIONS,
  transform: true,
  transformOptions: TRANSFORM_OPTIONS,
  exceptionFactory: invalidRequest,
};

/**
 * A body whose DTO compiles (compiled-dto.ts) and that passes its compiled rules is built and passed at once;
 * everything else — every refusal included, so each keeps its message — goes through class-transformer and
 * class-validator as before.
 *
 * Nest's ValidationPipe turns a path parameter typed `number` into `+value`, so ` 1`, `1e0`, `0x1`, `+1` and `1.0`
 * all named object 1 (a malformed id deleted VM 1): path parameters stay the strings they were, for the route's
 * own pipe (IntParamPipe) to judge.
 */
class CompiledValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const built = metadata.type === 'body' ? compiledBody(metadata.metatype, value) : null;
    return built ?? super.transform(value, metadata);
  }

  protected override transformPrimitive(value: unknown, metadata: ArgumentMetadata): unknown {
    return metadata.type === 'param' ? value : super.transformPrimitive(value, metadata);
  }
}

/** Global validation: unknown fields are rejected, wrong types and ranges are EINVAL problems. */
export function kernelValidationPipe(): ValidationPipe {
  return new CompiledValidationPipe(VALIDATION);
}

/**
 * The body parser's check of the raw bytes, before JSON.parse: UTF-8 only (RFC 8259 §8.1), and no nesting
 * deeper than MAX_BODY_DEPTH (EINVAL before any parser or transformer descends).
 */
export function verifyJsonBody(_req: unknown, _res: unknown, body: Buffer, encoding: string | null): void {
  if (encoding !== null && encoding.toLowerCase() !== 'utf-8') throw new KernelError('EINVAL', `a JSON body must be UTF-8, not ${encoding}`);
  checkJsonDepth(body);
}

/**
 * A body must be a JSON object: an array or a scalar is EINVAL before any DTO sees it. A field named
 * `__proto__` or `constructor`, in the body or the query, is an unknown field (class-transformer would
 * drop it silently before the whitelist sees it).
 */
@Injectable()
export class ObjectBodyPipe implements PipeTransform {
  transform(value: unknown, meta: ArgumentMetadata): unknown {
    if (meta.type === 'body' || meta.type === 'query') checkRequestShape(value, meta.type);
    return value;
  }
}

/** A path parameter that must be a non-negative safe integer (fd, pid, ioasid, vcpu). */
@Injectable()
export class IntParamPipe implements PipeTransform<string | number, number> {
  // The path string as it came (the global pipe leaves path parameters alone): digits only.
  transform(value: string | number, meta: ArgumentMetadata): number {
    if (!/^\d{1,15}$/.test(String(value))) throw new KernelError('EINVAL', `path parameter ${meta.data ?? ''} must be a non-negative integer`);
    return Number(value);
  }
}
