// A port wrapped call by call, for the doors' test wrappers (fail-when.ts, fixtures/hold-when.ts): every method
// call goes to `intercept`, which forwards it to the real port or not; `as(token)` returns a bound port wrapped the
// same way; what is not a method passes through.
export type Intercept = (method: string, args: unknown[], forward: () => unknown) => unknown;

export function interceptPort<P extends object>(port: P, intercept: Intercept): P {
  const wrap = (target: P): P =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function' || typeof prop !== 'string') return value;
        const method = value as (...a: unknown[]) => unknown;
        if (prop === 'as') return (...args: unknown[]) => wrap(method.apply(t, args) as P);
        return (...args: unknown[]) => intercept(prop, args, () => method.apply(t, args));
      },
    });
  return wrap(port);
}
