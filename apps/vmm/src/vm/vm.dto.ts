import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsInt, IsNotEmpty, IsObject, IsString, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { DescriptorDto } from '@app/shared/nest/shared.dto';


export class CreateVmDto {
  /** Unique VM name. */
  @IsString()
  @IsNotEmpty()
  @MaxLength(64)
  @Matches(/^[A-Za-z0-9._-]+$/)
  name!: string;

  /** Guest RAM, seen by the guest at GPA [0, memoryMiB MiB). */
  @IsInt()
  @Min(1)
  @Max(4096)
  memoryMiB!: number;

  @IsInt()
  @Min(1)
  @Max(64)
  vcpus!: number;

  /** Host BDFs to assign, in virtual slot order. */
  @IsArray()
  @ArrayMaxSize(31)
  @IsString({ each: true })
  @Matches(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/, { each: true })
  devices!: string[];
}




export class VcpuEnqcmdDto {
  /** Virtual RID of the device whose portal receives the descriptor. */
  @IsInt()
  @Min(0)
  @Max(0xffff)
  vrid!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => DescriptorDto)
  descriptor!: DescriptorDto;

}

export class VcpuEnqcmdsDto extends VcpuEnqcmdDto {
  /** ENQCMDS (guest kernel mode): the vPASID the guest kernel put in the descriptor. */
  @IsInt()
  @Min(0)
  @Max((1 << 20) - 1)
  pasid!: number;

  /** The descriptor's privilege bit (supervisor request). */
  @IsBoolean()
  privileged!: boolean;
}
