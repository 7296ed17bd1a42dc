import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsObject, IsOptional, IsString, Max, MaxLength, Min, ValidateNested } from 'class-validator';

const MAX_ADDR = Number.MAX_SAFE_INTEGER;
const MAX_PASID = (1 << 20) - 1;

export class MemslotDto {
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_ADDR)
  size!: number;

  /** The caller's hva backing the slot (must be mapped). */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  hva!: number;
}

export class GuestWriteDto {
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  @IsString()
  @MaxLength(6 << 20)
  data!: string;

  @IsOptional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}

export class GuestReadQuery {
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(4 << 20)
  length!: number;

  @IsOptional()
  @IsIn(['base64', 'hex'])
  encoding?: 'base64' | 'hex';
}

export class PasidTranslationDto {
  @IsBoolean()
  enabled!: boolean;
}

export class MapPasidDto {
  /** The guest's PASID; [1, 2^20). The caller never names a host PASID. */
  @IsInt()
  @Min(0)
  @Max(MAX_PASID + 1)
  vpasid!: number;

  @IsInt()
  @Min(0)
  @Max(1 << 20)
  ioasidFd!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_PASID)
  ioasid!: number;
}

export class UnmapPasidDto {
  @IsInt()
  @Min(0)
  @Max(MAX_PASID + 1)
  vpasid!: number;
}

export class DescriptorDto {
  @IsIn(['noop', 'memmove', 'fill', 'compare'])
  op!: 'noop' | 'memmove' | 'fill' | 'compare';

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  src?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  dst?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(0xffffffff)
  length?: number;

  /** fill: the 8-byte pattern, as a number below 2^53. */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  pattern?: number;

  /** Where the device writes the 32-byte completion record (32-byte aligned). */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  completion!: number;
}

export class EnqcmdDto {
  /** The device fd whose portal receives the descriptor. */
  @IsInt()
  @Min(0)
  @Max(1 << 20)
  deviceFd!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => DescriptorDto)
  descriptor!: DescriptorDto;
}
