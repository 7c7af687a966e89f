/**
 * The config reference (docs/CONFIG.md) is generated from the schema's descriptions, so the
 * documentation cannot drift from what the parser accepts; a test checks the committed file.
 */
import { z } from "zod";
import { configSchema } from "./schema.ts";

export interface KeyDoc {
  /** Dotted TOML path, e.g. "garbage-collection.interval" or "storage.credentials.access_key_id". */
  path: string;
  type: string;
  default: string;
  description: string;
  /** For keys that exist only for one storage type. */
  only?: string;
}

function unwrap(t: z.ZodType): { inner: z.ZodType; def?: unknown } {
  let cur: z.ZodType = t;
  let def: unknown;
  for (;;) {
    const d = (cur as unknown as { _zod: { def: { type: string; innerType?: z.ZodType; defaultValue?: unknown; in?: z.ZodType } } })._zod.def;
    if (d.type === "default" || d.type === "prefault") {
      def = d.defaultValue;
      cur = d.innerType as z.ZodType;
    } else if (d.type === "optional" || d.type === "nullable") cur = d.innerType as z.ZodType;
    else if (d.type === "pipe") cur = d.in as z.ZodType;
    else return { inner: cur, ...(def !== undefined && { def }) };
  }
}

function typeName(t: z.ZodType): string {
  const d = (t as unknown as { _zod: { def: { type: string; element?: z.ZodType; entries?: Record<string, string>; values?: unknown[] } } })._zod.def;
  switch (d.type) {
    case "string":
      return "string";
    case "number":
      return "integer";
    case "boolean":
      return "boolean";
    case "array":
      return `array of ${typeName(d.element as z.ZodType)}`;
    case "enum":
      return Object.values(d.entries ?? {}).map((v) => `"${v}"`).join(" \\| ");
    case "literal":
      return (d.values ?? []).map((v) => JSON.stringify(v)).join(" \\| ");
    case "union":
      return ((d as unknown as { options: z.ZodType[] }).options).map((o) => typeName(unwrap(o).inner)).join(" or ");
    default:
      return d.type;
  }
}

function walk(shape: Record<string, z.ZodType>, prefix: string, only: string | undefined, out: KeyDoc[]): void {
  for (const [key, schema] of Object.entries(shape)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const { inner, def } = unwrap(schema);
    const description = schema.description ?? inner.description ?? "";
    const d = (inner as unknown as { _zod: { def: { type: string; shape?: Record<string, z.ZodType>; options?: z.ZodType[]; element?: z.ZodType } } })._zod.def;
    if (d.type === "object") {
      out.push({ path, type: "table", default: "", description, ...(only && { only }) });
      walk(d.shape as Record<string, z.ZodType>, path, only, out);
    } else if (d.type === "union" && path === "storage") {
      out.push({ path, type: "table", default: "", description });
      walkOptions(d.options ?? [], path, out);
    } else if (d.type === "array" && isTables(d.element as z.ZodType)) {
      // [[storage.backends]]: one row for the array, then the keys of an element.
      out.push({ path, type: "array of tables", default: "", description, ...(only && { only }) });
      const element = unwrap(d.element as z.ZodType).inner;
      const ed = (element as unknown as { _zod: { def: { type: string; shape?: Record<string, z.ZodType>; options?: z.ZodType[] } } })._zod.def;
      if (ed.type === "object") walk(ed.shape as Record<string, z.ZodType>, `${path}[]`, only, out);
      else walkOptions(ed.options ?? [], `${path}[]`, out);
    } else if (d.type === "record") {
      // [storage.caches.<cache>]: keyed by a name the operator chooses.
      out.push({ path, type: "table of tables", default: "", description, ...(only && { only }) });
      const value = unwrap((d as unknown as { valueType: z.ZodType }).valueType).inner;
      walk((value as unknown as { _zod: { def: { shape: Record<string, z.ZodType> } } })._zod.def.shape, `${path}.<name>`, only, out);
    } else {
      out.push({ path, type: typeName(inner), default: def === undefined ? "" : JSON.stringify(def), description, ...(only && { only }) });
    }
  }
}

function isTables(t: z.ZodType): boolean {
  const type = (unwrap(t).inner as unknown as { _zod: { def: { type: string } } })._zod.def.type;
  return type === "object" || type === "union";
}

/** The keys of each form a table may take; a form without a `type` tag is named by what sets it apart. */
function walkOptions(options: z.ZodType[], path: string, out: KeyDoc[]): void {
  for (const option of options) {
    const od = (option as unknown as { _zod: { def: { type: string; shape?: Record<string, z.ZodType>; options?: z.ZodType[] } } })._zod.def;
    if (od.type === "union") {
      walkOptions(od.options ?? [], path, out);
      continue;
    }
    const optShape = od.shape as Record<string, z.ZodType>;
    const only = optShape.type
      ? `type = "${(optShape.type as unknown as { _zod: { def: { values: string[] } } })._zod.def.values[0] as string}"`
      : `with ${Object.keys(optShape).filter((k) => !unwrap(optShape[k] as z.ZodType).def && isRequired(optShape[k] as z.ZodType)).map((k) => `\`${k}\``).join(", ")}`;
    const docs: KeyDoc[] = [];
    walk(optShape, path, only, docs);
    for (const doc of docs) if (!out.some((o) => o.path === doc.path && o.only === doc.only)) out.push(doc);
  }
}

function isRequired(t: z.ZodType): boolean {
  return !(t as unknown as { safeParse(v: unknown): { success: boolean } }).safeParse(undefined).success;
}

export function configKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  walk((configSchema as unknown as { shape: Record<string, z.ZodType> }).shape, "", undefined, out);
  return out;
}

export function renderConfigReference(): string {
  const rows = configKeys().map(
    (k) => `| \`${k.path}\` | ${k.type}${k.only ? ` (${k.only})` : ""} | ${k.default ? `\`${k.default}\`` : ""} | ${k.description.replace(/\|/g, "\\|")} |`,
  );
  return `# larderd configuration reference

<!-- Generated from server/src/config/schema.ts by \`npm run docs:config -w server\`; a test keeps it current. -->

\`larderd\` reads \`server.toml\` from \`--config PATH\`, else from the base64 text in
\`LARDER_SERVER_CONFIG_BASE64\`, else from \`$XDG_CONFIG_HOME/larder/server.toml\` (written on first
start). Key names follow attic's \`server.toml\`, so an attic config loads as it is; unknown keys are
rejected with their name. Durations are written like \`"12 hours"\`, \`"3 months"\`, \`"2y"\`, \`"0s"\`.

Every secret can be given by path instead of by value, so it never sits in a Nix store or in the
process environment: each secret key \`X\` has a sibling \`X-file\` (\`X_file\` under
\`[storage.credentials]\`), and \`database.password-file\` holds just the PostgreSQL password (merged
into the URL; read again when the database refuses it, so a rotated password needs no restart).
A relative path is looked up in \`$CREDENTIALS_DIRECTORY\`, so systemd's
\`LoadCredential=database-url:/run/keys/…\` pairs with \`url-file = "database-url"\`. Giving a key and
its \`-file\` sibling together is an error. Secrets may also come from the environment, used only
where \`server.toml\` sets neither the key nor its \`-file\` sibling (attic's precedence: the file
wins); prefer the \`_FILE\` forms, which name a file. The \`ATTIC_SERVER_…\` names work as well.
Among signing keys, the first one set wins in attic's order: RS256 public key, RS256 private key,
HS256 secret, first in \`server.toml\`, then in the environment:

| variable | stands in for |
|---|---|
| \`LARDER_SERVER_DATABASE_URL_FILE\` (or \`LARDER_SERVER_DATABASE_URL\`) | \`database.url\` |
| \`LARDER_SERVER_DATABASE_PASSWORD_FILE\` | \`database.password-file\` |
| \`LARDER_SERVER_TOKEN_HS256_SECRET_BASE64_FILE\` (or without \`_FILE\`) | \`jwt.signing.token-hs256-secret-base64\` |
| \`LARDER_SERVER_TOKEN_RS256_SECRET_BASE64_FILE\` (or without \`_FILE\`) | \`jwt.signing.token-rs256-secret-base64\` |
| \`LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64_FILE\` (or without \`_FILE\`) | \`jwt.signing.token-rs256-pubkey-base64\` |

attic's \`ATTIC_SERVER_*\` names of the same variables are accepted too. S3 credentials come from
\`[storage.credentials]\` or the AWS SDK's default chain (\`AWS_ACCESS_KEY_ID\`, instance roles, …).

| key | type | default | meaning |
|---|---|---|---|
${rows.join("\n")}

## Several storage backends

\`[storage]\` names one backend (\`type = "local"\` or \`"s3"\`, as above), or several as
\`[[storage.backends]]\` with a \`strategy\`. Each backend takes the keys of a single one plus a
\`name\` (recorded with every NAR stored there; an unnamed single backend is \`"default"\`), an
optional \`capacity\` and, for \`split\`, a \`weight\`. Any mix of local and S3 works:

\`\`\`toml
[storage]
strategy = "in-order"        # round-robin | in-order | split | least-used

[[storage.backends]]
name = "default"             # the backend existing NARs are on (the single one before)
type = "local"
path = "/var/lib/larder/storage"
capacity = "400 GB"

[[storage.backends]]
name = "bulk"
type = "s3"
region = "eu-central-1"
bucket = "larder-bulk"

# Optional, per cache: its own strategy and backends.
[storage.caches.ci]
strategy = "split"
backends = ["default", "bulk"]
\`\`\`

Moving NARs between backends, draining one before removing it, and renaming one are
\`larderd storage …\` commands (docs/OPERATIONS.md, "Several storage backends").
`;
}
