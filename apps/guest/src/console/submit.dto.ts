import { Type } from 'class-transformer';
import { IsInt, IsObject, Max, Min, ValidateNested } from 'class-validator';
import { WorkDescriptorDto } from '@app/shared/nest/shared.dto';
import { Optional } from '@app/shared/nest/optional';


export class SubmitDto {
  @IsInt()
  @Min(0)
  @Max(0xffff)
  vrid!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => WorkDescriptorDto)
  descriptor!: WorkDescriptorDto;

  /** The vCPU the process runs on (default 0). */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(63)
  vcpu?: number;
}
