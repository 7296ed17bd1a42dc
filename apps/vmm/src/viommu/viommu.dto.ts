import { ArrayMaxSize, IsArray, IsBoolean, IsInt, Max, Min } from 'class-validator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';

export class ContextDto {
  /** GPA of the PASID directory (4 KiB aligned, in guest RAM). */
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  pasidDirGpa!: number;
}

export class InvalidateDto {
  /**
   * Invalidation-queue descriptors, processed in order: `{type:"pasid-cache", vpasid?}`,
   * `{type:"piotlb", vpasid, addr?, npages?|length?}`, `{type:"wait"}`. A malformed batch is EINVAL whole.
   */
  @IsArray()
  @ArrayMaxSize(256)
  descriptors!: unknown[];
}

export class PageResponseDto {
  @IsInt()
  @Min(0)
  @Max(0xffff)
  vrid!: number;

  @IsInt()
  @Min(1)
  @Max(PASID_LIMIT - 1)
  vpasid!: number;

  /** The page-request group index being answered. */
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  seq!: number;

  /** Success (the page is now mapped) or failure (the device reports a page fault). */
  @IsBoolean()
  success!: boolean;
}
