import { IsIn, IsInt, Max, Min } from 'class-validator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { NR_OPEN } from '../process/fd-table';

export class DisallowIoasidDto {
  /** The caller's /dev/ioasid fd that owns the ioasid. */
  @IsInt()
  @Min(0)
  @Max(NR_OPEN)
  ioasidFd!: number;

  @IsInt()
  @Min(1)
  @Max(PASID_LIMIT - 1)
  ioasid!: number;
}

export class AllowIoasidDto extends DisallowIoasidDto {
  /** `rid`: the device's untagged requests; `pasid`: requests tagged with PASID = ioasid. */
  @IsIn(['rid', 'pasid'])
  mode!: 'rid' | 'pasid';
}
