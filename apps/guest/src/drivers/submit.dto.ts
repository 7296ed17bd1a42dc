import { Type } from 'class-transformer';
import { IsIn, IsInt, IsObject, IsOptional, Max, Min, ValidateNested } from 'class-validator';

const MAX_ADDR = Number.MAX_SAFE_INTEGER;

/** The work itself; the driver adds the completion record. Addresses are the process's GVAs. */
export class WorkDto {
  @IsIn(['noop', 'memmove', 'fill', 'compare'])
  op!: 'noop' | 'memmove' | 'fill' | 'compare';

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  src?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  dst?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(0xffffffff)
  length?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  pattern?: number;
}

export class SubmitDto {
  @IsInt()
  @Min(0)
  @Max(0xffff)
  vrid!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => WorkDto)
  descriptor!: WorkDto;

  /** The vCPU the process runs on (default 0). */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(63)
  vcpu?: number;
}
