import { Equals, IsBoolean, IsIn, IsInt, Max, Min, ValidateIf } from 'class-validator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { Optional } from '@app/shared/nest/optional';

const MAX_ADDR = Number.MAX_SAFE_INTEGER;

export class BindPgtblDto {
  /** `mm`: the caller's address space (host SVA); `iova`: an empty IO page table for MAP/UNMAP; `nested`: a guest first-level table over an `iova` parent. */
  @IsIn(['mm', 'iova', 'nested'])
  kind!: 'mm' | 'iova' | 'nested';

  /** nested only: the bound `iova` ioasid of the same fd that translates the guest's GPAs. */
  @ValidateIf((o: BindPgtblDto) => o.kind === 'nested' || o.parent !== undefined)
  @IsInt()
  @Min(1)
  @Max(PASID_LIMIT - 1)
  parent?: number;

  /** nested only: GPA of the guest's PML4 (4 KiB aligned); absent = pass-through to the parent's space. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  root?: number;

  /**
   * nested only: a fault queue of this ioasid fd (POST .../fault-queues); the table's page requests go there
   * (the iommufd hwpt's fault object). Without one, its page requests are answered invalid at once.
   */
  @Optional()
  @IsInt()
  @Min(1)
  @Max(0xffff_ffff)
  faultQueue?: number;
}

export class MapDto {
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  iova!: number;

  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  hva!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_ADDR)
  length!: number;

  @IsBoolean()
  read!: boolean;

  @IsBoolean()
  write!: boolean;
}

export class UnmapDto {
  /** Unmap every area. */
  @Optional()
  @Equals(true)
  all?: true;

  @ValidateIf((o: UnmapDto) => o.all === undefined)
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  iova?: number;

  @ValidateIf((o: UnmapDto) => o.all === undefined)
  @IsInt()
  @Min(1)
  @Max(MAX_ADDR)
  length?: number;
}

export class InvalidateDto {
  /** With `length`: flush this range of the IOTLB; without both: flush everything cached for the ioasid. */
  @ValidateIf((o: InvalidateDto) => o.length !== undefined || o.iova !== undefined)
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  iova?: number;

  @ValidateIf((o: InvalidateDto) => o.length !== undefined || o.iova !== undefined)
  @IsInt()
  @Min(1)
  @Max(MAX_ADDR)
  length?: number;
}
