import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsInt, IsNotEmpty, IsObject, IsString, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { DescriptorDto } from '@app/shared/nest/shared.dto';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { MAX_VCPUS } from '../machine/machine.constants';


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
  @Max(MAX_VCPUS)
  vcpus!: number;

  /** Host BDFs to assign, in virtual slot order. */
  @IsArray()
  @ArrayMaxSize(31)
  @IsString({ each: true })
  @Matches(BDF_PATTERN, { each: true })
  // The Swagger CLI plugin copies only a regex literal from @Matches into the schema: vm.controller.ts names the
  // shared one (there, so that this file stays free of Nest for the in-process door).
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
  @Max(PASID_LIMIT - 1)
  pasid!: number;

  /** The descriptor's privilege bit (supervisor request). */
  @IsBoolean()
  privileged!: boolean;
}

export class GuestRamHandle {
  /** A capability to the memory file behind guest RAM (128 random bits, no host path or pid): map the VM's RAM by it. */
  handle!: string;
  /** Bytes of RAM (guest-physical [0, size)). */
  size!: number;
}
