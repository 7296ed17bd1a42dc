import { Type } from 'class-transformer';
import { IsInt, IsObject, Max, Min, ValidateNested } from 'class-validator';
import { DescriptorDto } from '@app/shared/nest/shared.dto';

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
