import { IsInt, IsString, Max, Min } from 'class-validator';

export class PageResponseDto {
  /** The cookie the group was read with. */
  @IsInt()
  @Min(0)
  @Max(0xffff_ffff)
  cookie!: number;

  /** `success` (the pages are there: the device retries) or `invalid` (the device completes with a page fault). */
  @IsString()
  code!: string;
}
