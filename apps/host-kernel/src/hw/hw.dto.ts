import { Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { Optional } from '@app/shared/nest/optional';

export class PasidQuery {
  /** One host PASID to describe instead of the pool counts. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(PASID_LIMIT - 1)
  pasid?: number;
}

export class LimitsQuery {
  /** One process to describe instead of every running one. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  pid?: number;
}

export class RawDmaDto {
  /** The PASID the device tags the request with; absent = an untagged (RID) request. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(PASID_LIMIT - 1)
  pasid?: number;

  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  address!: number;

  @IsInt()
  @Min(1)
  @Max(1 << 20)
  length!: number;

  @IsBoolean()
  write!: boolean;

  /** A supervisor request (PR = 1); user-mode requests (the default) cannot reach U/S = 0 pages. */
  @Optional()
  @IsBoolean()
  privileged?: boolean;

  /** For a write: the bytes, base64 (length must match). */
  @Optional()
  @IsString()
  @MaxLength(2 << 20)
  data?: string;
}

export class EngineDto {
  /** false stalls the device's engine (descriptors stay queued), true resumes it. */
  @IsBoolean()
  running!: boolean;
}
