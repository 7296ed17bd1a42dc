import { Transform } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { PickType } from '@nestjs/swagger';
import { toInt } from './shared.dto';

const toTime = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  return /^\d+$/.test(value) ? Number(value) : Date.parse(value);
};
const toBool = ({ value }: { value: unknown }): unknown => (value === 'true' || value === '1' ? true : value === 'false' || value === '0' ? false : value);

export class AuditQueryDto {
  /** W3C trace id (32 hex digits). */
  @IsOptional()
  @Matches(/^[0-9a-f]{32}$/)
  trace?: string;

  /** Operation name, e.g. `ioasid.alloc`. */
  @IsOptional()
  @IsString()
  @MaxLength(64)
  operation?: string;

  /** Object the operation acted on, e.g. `ioasid:5`, `vm:1`. */
  @IsOptional()
  @IsString()
  @MaxLength(128)
  object?: string;

  /** Actor, e.g. `pid:3`, `vm:1`. */
  @IsOptional()
  @IsString()
  @MaxLength(64)
  actor?: string;

  /** From this time: epoch milliseconds or ISO 8601. */
  @IsOptional()
  @Transform(toTime)
  @IsInt()
  since?: number;

  /** Until this time: epoch milliseconds or ISO 8601. */
  @IsOptional()
  @Transform(toTime)
  @IsInt()
  until?: number;

  /** At most this many rows per app (default 1000). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10000)
  limit?: number;

  /** Only rows after this journal seq (keyset paging: pass the last seq of the previous page). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  afterSeq?: number;

  /** Also collect the matching rows of the peer apps (default true for `sequence`). */
  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  federate?: boolean;

  /** How many hops federation may still go (internal). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(4)
  depth?: number;

  /** `sequence` only: `false` names every call by its journal operation instead of as the design does (`KVM_MAP_PASID`, `IOASID_ALLOC`, the default). */
  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  labels?: boolean;

  /** Whose rows, on a database several instances share: an INSTANCE name, or `*` for every instance of this app (default: this instance's). */
  @IsOptional()
  @Matches(/^(\*|[A-Za-z0-9._:@-]{1,64})$/)
  instance?: string;

  /** The asking peer's deadline for this answer, in ms (internal: a peer of a peer gets half of ours). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(60_000)
  timeoutMs?: number;
}

/** `GET /v1/audit/traces`: how many traces, and federation as for events. */
export class TracesQueryDto extends PickType(AuditQueryDto, ['federate', 'depth', 'timeoutMs'] as const) {
  /** At most this many traces (default 50). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
