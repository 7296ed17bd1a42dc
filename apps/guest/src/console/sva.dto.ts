import { IsInt, Max, Min } from 'class-validator';

export class SvaBindDto {
  /** Guest process id. */
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  pid!: number;

  /** Virtual RID of the device (from the machine description). */
  @IsInt()
  @Min(0)
  @Max(0xffff)
  vrid!: number;
}
