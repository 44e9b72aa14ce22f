// Reads an OpenAPI 3.1 document (a path argument, else stdin) and writes it to stdout
// with one rewrite: a schema holding `$ref` beside other keywords becomes
// `allOf: [{ $ref }, { ...the others }]`. JSON Schema 2020-12 (and so OpenAPI 3.1)
// gives both forms the same meaning, but openapi-typescript ignores whatever sits
// beside a `$ref`, and schemars writes a tagged enum's variants exactly that way
// (`{ "$ref": "#/…/ComputeStep", "properties": { "type": { "const": "compute" } } }`),
// which would drop the `type` tag from the generated types. Everything else is kept
// byte for byte in order, so generation stays deterministic.

import { readFileSync } from 'node:fs';

/** Keywords that annotate rather than constrain; they stay beside the `allOf`. */
const ANNOTATIONS = new Set(['description', 'title', 'summary', 'deprecated', 'readOnly', 'writeOnly', 'examples', 'example', 'default']);

function normalize(value) {
  if (Array.isArray(value)) return value.map(normalize);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, child] of Object.entries(value)) out[key] = normalize(child);
  if (typeof out.$ref !== 'string') return out;
  const keys = Object.keys(out).filter((key) => key !== '$ref');
  const constraints = keys.filter((key) => !ANNOTATIONS.has(key));
  if (constraints.length === 0) return out;
  const annotations = {};
  const rest = {};
  for (const key of keys) (ANNOTATIONS.has(key) ? annotations : rest)[key] = out[key];
  return { ...annotations, allOf: [{ $ref: out.$ref }, rest] };
}

const text = process.argv[2] ? readFileSync(process.argv[2], 'utf8') : readFileSync(0, 'utf8');
process.stdout.write(`${JSON.stringify(normalize(JSON.parse(text)), null, 2)}\n`);
