import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsNotEmpty, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { toInt } from '@app/shared/nest/shared.dto';
import { Optional } from '@app/shared/nest/optional';

/** Largest memory payload of one read or write (bytes). */
export const MAX_IO_BYTES = 4 << 20;
const MAX_ADDR = Number.MAX_SAFE_INTEGER;

export class CreateProcessDto {
  /** The process name, like /proc/PID/comm. */
  @IsString()
  @IsNotEmpty()
  @MaxLength(64)
  @Matches(/^[\x20-\x7e]+$/)
  comm!: string;
}

export class MmapDto {
  /** Bytes to map (rounded up to 4 KiB); anonymous, read-write. */
  @IsInt()
  @Min(1)
  @Max(1 << 30)
  length!: number;

  /** Shared: backed by a memory file (a memfd) whose name the answer hands to the caller, populated at once. */
  @Optional()
  @IsBoolean()
  shared?: boolean;
}

export class MmapResult {
  /** Where the mapping starts. */
  hva!: number;
  /** The memory file of a shared mapping: map it by this name (POSIX shared memory) to share the bytes. */
  file?: string;
}

export class WriteMemoryDto {
  /** Host virtual address in the caller's address space. */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  hva!: number;

  /** The bytes, base64 (default) or hex. */
  @IsString()
  @MaxLength(Math.ceil((MAX_IO_BYTES * 4) / 3) + 4)
  data!: string;

  @Optional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}

export class ReadMemoryQuery {
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  hva!: number;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(MAX_IO_BYTES)
  length!: number;

  @IsOptional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}

