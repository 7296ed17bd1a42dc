import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';

const MAX_ADDR = Number.MAX_SAFE_INTEGER;

/** A DSA-like work descriptor; addresses are in the submitting PASID's address space (GVAs for a guest process). */
export class DescriptorDto {
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

  /** Address of the 32-byte completion record. */
  @IsInt()
  @Min(0)
  @Max(MAX_ADDR)
  completion!: number;
}
