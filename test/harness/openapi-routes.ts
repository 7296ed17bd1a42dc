// The routes of the three committed OpenAPI documents (openapi/<app>.json, kept equal to what the apps serve by
// test/openapi.e2e-spec.ts): the campaigns that must reach every route (the authorization matrix, the bad-input
// fuzz) enumerate them from here, so a route is covered the day it is added.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Doc = 'host-kernel' | 'vmm' | 'guest';
export const DOCS: readonly Doc[] = ['host-kernel', 'vmm', 'guest'];

export interface Schema {
  type?: string;
  $ref?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  pattern?: string;
  items?: Schema;
}

export interface Route {
  app: Doc;
  method: string;
  /** The path template, as the document writes it (`/v1/ioasid/{fd}/ioasids/{ioasid}`). */
  path: string;
  params: string[];
  /** The body's schema, references resolved one level at a time by `resolve`. */
  body?: Schema;
}

interface OpenApiDoc {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
  components?: { schemas?: Record<string, Schema> };
}

const ROOT = join(__dirname, '..', '..');
const docs = new Map<Doc, OpenApiDoc>();

function doc(app: Doc): OpenApiDoc {
  let d = docs.get(app);
  if (!d) docs.set(app, (d = JSON.parse(readFileSync(join(ROOT, 'openapi', `${app}.json`), 'utf8')) as OpenApiDoc));
  return d;
}

/** A schema with its `$ref` followed (in the app's own document). */
export function resolve(app: Doc, s: Schema): Schema {
  if (!s.$ref) return s;
  const name = s.$ref.split('/').pop() as string;
  const target = doc(app).components?.schemas?.[name];
  if (!target) throw new Error(`openapi/${app}.json: no schema ${name}`);
  return target;
}

export function routes(app: Doc): Route[] {
  const out: Route[] = [];
  for (const [path, ops] of Object.entries(doc(app).paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const schema = op.requestBody?.content['application/json']?.schema;
      out.push({
        app,
        method: method.toUpperCase(),
        path,
        params: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]),
        body: schema ? resolve(app, schema) : undefined,
      });
    }
  }
  return out;
}

export const allRoutes = (): Route[] => DOCS.flatMap(routes);

export const routeName = (r: Route): string => `${r.app} ${r.method} ${r.path}`;

/** The route's URL with its parameters filled from `values` (a parameter with no value is an error). */
export function fill(base: string, r: Route, values: Record<string, string | number>): string {
  return (
    base +
    r.path.replace(/\{(\w+)\}/g, (_m, p: string) => {
      if (values[p] === undefined) throw new Error(`${routeName(r)}: no value for {${p}}`);
      return encodeURIComponent(String(values[p]));
    })
  );
}

/** The audit plane of every app: its journal, state and metrics (the operator's, by the audit token). */
export const isAuditPlane = (r: Route): boolean => r.path.startsWith('/v1/audit/') || r.path === '/metrics';

/**
 * A body the schema accepts in shape (every required field, each of a plausible value): the base each bad-input
 * variant spoils in one place. Not necessarily a call that succeeds (ids may name nothing).
 */
export function plausible(app: Doc, schema: Schema | undefined, depth = 0): unknown {
  if (!schema) return {};
  const s = resolve(app, schema);
  if (s.enum?.length) return s.enum[0];
  switch (s.type) {
    case 'string':
      return 'a';
    case 'boolean':
      return false;
    case 'number':
    case 'integer':
      return Math.max(s.minimum ?? 0, Math.min(s.maximum ?? 1, 1));
    case 'array':
      return [];
    default: {
      if (depth > 4) return {};
      const out: Record<string, unknown> = {};
      for (const name of s.required ?? []) out[name] = plausible(app, s.properties?.[name] ?? {}, depth + 1);
      return out;
    }
  }
}
