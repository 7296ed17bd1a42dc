import { IsBoolean, IsInt, Max, Min } from 'class-validator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { EnqcmdDto } from '../cpu/cpu.dto';
import { NR_OPEN } from '../process/fd-table';

export { EnqcmdDto };

const MAX_ADDR = Number.MAX_SAFE_INTEGER;

export class MemslotDto {
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  gpa!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_ADDR)
  size!: number;

  /** The caller's hva backing the slot (must be mapped). */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  hva!: number;
}



export class PasidTranslationDto {
  @IsBoolean()
  enabled!: boolean;
}

export class MapPasidDto {
  /** The guest's PASID; [1, 2^20). The caller never names a host PASID. */
  @IsInt()
  @Min(0)
  @Max(PASID_LIMIT)
  vpasid!: number;

  @IsInt()
  @Min(0)
  @Max(NR_OPEN)
  ioasidFd!: number;

  @IsInt()
  @Min(1)
  @Max(PASID_LIMIT - 1)
  ioasid!: number;
}

export class UnmapPasidDto {
  @IsInt()
  @Min(0)
  @Max(PASID_LIMIT)
  vpasid!: number;
}


export class EnqcmdsDto extends EnqcmdDto {
  /** ENQCMDS: the PASID the (guest) kernel put in the descriptor — a vPASID, translated when translation is on. */
  @IsInt()
  @Min(0)
  @Max(PASID_LIMIT - 1)
  pasid!: number;

  /** The descriptor's privilege bit (supervisor request). */
  @IsBoolean()
  privileged!: boolean;
}
