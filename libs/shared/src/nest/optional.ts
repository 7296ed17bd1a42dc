import { ValidateIf } from 'class-validator';

/**
 * An optional body field. Only an absent field (undefined) skips validation: `null` is a value like any other
 * and no field of the contract takes it, so it fails the field's rules (EINVAL). class-validator's
 * `@IsOptional()` lets null through as if absent, which gave `root: null` the meaning of an absent root.
 */
export const Optional = (): PropertyDecorator => ValidateIf((_o: object, value: unknown) => value !== undefined);
