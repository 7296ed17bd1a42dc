import { Type } from 'class-transformer';
import { IsInt, IsObject, IsOptional, Max, Min, ValidateNested } from 'class-validator';
import { WorkDescriptorDto } from '@app/shared/nest/shared.dto';


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
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(63)
  vcpu?: number;
}
