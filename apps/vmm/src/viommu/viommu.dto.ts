import { ArrayMaxSize, IsArray, IsIn, IsInt, Max, Min } from 'class-validator';
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

  /** The page request group index being answered (9 bits). */
  @IsInt()
  @Min(0)
  @Max(511)
  grpid!: number;

  /**
   * `success` (the pages are mapped: the device retries), `invalid` (the device completes with a page fault) or
   * `failure` (VT-d Response Failure: reaches the host as invalid, so PRI stays enabled for the device's other users).
   */
  @IsIn(['success', 'invalid', 'failure'])
  code!: 'success' | 'invalid' | 'failure';
}
