import { IsIn, IsInt, Max, Min } from 'class-validator';

export class DisallowIoasidDto {
  /** The caller's /dev/ioasid fd that owns the ioasid. */
  @IsInt()
  @Min(0)
  @Max(1 << 20)
  ioasidFd!: number;

  @IsInt()
  @Min(1)
  @Max((1 << 20) - 1)
  ioasid!: number;
}

export class AllowIoasidDto extends DisallowIoasidDto {
  /** `rid`: the device's untagged requests; `pasid`: requests tagged with PASID = ioasid. */
  @IsIn(['rid', 'pasid'])
  mode!: 'rid' | 'pasid';
}
