import { Type } from 'class-transformer';
import { IsInt, IsObject, Max, Min, ValidateNested } from 'class-validator';
import { DescriptorDto } from '@app/shared/nest/shared.dto';
import { NR_OPEN } from '../process/fd-table';

export class EnqcmdDto {
  /** The device fd whose portal receives the descriptor. */
  @IsInt()
  @Min(0)
  @Max(NR_OPEN)
  deviceFd!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => DescriptorDto)
  descriptor!: DescriptorDto;
}
