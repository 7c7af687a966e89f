/**
 * TLS to PostgreSQL, decided once from the URL's libpq parameters and `database.ca-file`:
 * verified (chain and host name) whenever TLS is on, unless the URL itself says `no-verify`.
 * The URL handed on carries no ssl parameters, so nothing below (pg's own URL parsing, PGSSLMODE)
 * can quietly weaken what was decided here.
 */
import { readFileSync } from "node:fs";
import { splitUrl, joinUrl } from "./database-url.ts";

export type TlsMode = "verify-full" | "verify-ca" | "no-verify";

export interface DatabaseTls {
  mode: TlsMode;
  /** PEM certificate authorities; without them Node's roots (and NODE_EXTRA_CA_CERTS) are used. */
  ca?: string;
  /** Where `ca` was read from, for messages. */
  caFile?: string;
}

export class TlsConfigError extends Error {}

const MODES: Record<string, TlsMode | "off"> = {
  disable: "off",
  // libpq's allow/prefer/require do not check the certificate; here TLS is always checked
  // unless no-verify is written out.
  allow: "verify-full",
  prefer: "verify-full",
  require: "verify-full",
  "verify-ca": "verify-ca",
  "verify-full": "verify-full",
  "no-verify": "no-verify",
};

function readCa(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TlsConfigError(`${what}: cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (e as Error).message}`);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new TlsConfigError(`${what}: ${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  return text;
}

/** Splits a postgres:// URL into the URL pg gets (no ssl parameters) and the TLS settings. */
export function databaseTls(url: string, caFile: string | undefined): { url: string; tls?: DatabaseTls } {
  const parts = splitUrl(url);
  if (!parts) return { url };
  const q = parts.rest.indexOf("?");
  if (q < 0 && caFile === undefined) return { url };
  const params = new URLSearchParams(q < 0 ? "" : parts.rest.slice(q + 1));
  for (const unsupported of ["sslcert", "sslkey", "sslpassword", "sslcrl"]) {
    if (params.has(unsupported)) throw new TlsConfigError(`database url: ${unsupported} (client certificates) is not supported`);
  }
  const sslmode = params.get("sslmode") ?? (params.get("ssl") === "true" || params.get("ssl") === "1" ? "verify-full" : undefined);
  const rootCert = params.get("sslrootcert") ?? undefined;
  for (const k of ["sslmode", "ssl", "sslrootcert"]) params.delete(k);
  const query = params.toString();
  const stripped = joinUrl({ ...parts, rest: `${q < 0 ? parts.rest : parts.rest.slice(0, q)}${query ? `?${query}` : ""}` });

  if (rootCert !== undefined && caFile !== undefined) throw new TlsConfigError("give the CA bundle once: database.ca-file or the URL's sslrootcert, not both");
  const mode = sslmode === undefined ? (caFile ?? rootCert) !== undefined ? "verify-full" : "off" : MODES[sslmode];
  if (mode === undefined) throw new TlsConfigError(`database url: sslmode "${sslmode}" is not one of ${Object.keys(MODES).join(", ")}`);
  if (mode === "off") {
    if (caFile !== undefined) throw new TlsConfigError("database.ca-file is set but the URL says sslmode=disable");
    return { url: stripped };
  }
  const file = caFile ?? rootCert;
  const what = caFile !== undefined ? "database.ca-file" : "database url sslrootcert";
  // libpq's sslrootcert=system means the system's roots: Node's defaults.
  const ca = file !== undefined && file !== "system" && mode !== "no-verify" ? readCa(file, what) : undefined;
  return { url: stripped, tls: { mode, ...(ca !== undefined && { ca, caFile: file as string }) } };
}
