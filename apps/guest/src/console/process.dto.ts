import { Transform } from 'class-transformer';
import { IsBoolean, IsInt, IsNotEmpty, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { Optional } from '@app/shared/nest/optional';
import { toInt } from '@app/shared/nest/shared.dto';


export class CreateProcessDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(64)
  @Matches(/^[\x20-\x7e]+$/)
  name!: string;
}

export class MmapDto {
  /** Bytes (rounded up to 4 KiB): anonymous, user, read-write. */
  @IsInt()
  @Min(1)
  @Max(64 << 20)
  length!: number;

  /** MAP_POPULATE: give every page its zeroed frame now (default: on first touch, by a write or a device's page request). */
  @Optional()
  @IsBoolean()
  populate?: boolean;
}

export class MunmapDto {
  /** Start of a whole mapping made by mmap. */
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  gva!: number;

  @IsInt()
  @Min(1)
  @Max(64 << 20)
  length!: number;
}

export class WriteDto {
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  gva!: number;

  /** base64 bytes. */
  @IsString()
  @MaxLength(6 << 20)
  data!: string;
}

export class ReadQuery {
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  gva!: number;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(4 << 20)
  length!: number;
}
