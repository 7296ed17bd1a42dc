import { IsBoolean, IsInt, Max, Min } from 'class-validator';
import { EnqcmdDto } from '../cpu/cpu.dto';

export { EnqcmdDto };

const MAX_ADDR = Number.MAX_SAFE_INTEGER;
const MAX_PASID = (1 << 20) - 1;

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
  @Max(MAX_PASID + 1)
  vpasid!: number;

  @IsInt()
  @Min(0)
  @Max(1 << 20)
  ioasidFd!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_PASID)
  ioasid!: number;
}

export class UnmapPasidDto {
  @IsInt()
  @Min(0)
  @Max(MAX_PASID + 1)
  vpasid!: number;
}


export class EnqcmdsDto extends EnqcmdDto {
  /** ENQCMDS: the PASID the (guest) kernel put in the descriptor — a vPASID, translated when translation is on. */
  @IsInt()
  @Min(0)
  @Max(MAX_PASID)
  pasid!: number;

  /** The descriptor's privilege bit (supervisor request). */
  @IsBoolean()
  privileged!: boolean;
}
