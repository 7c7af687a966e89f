/**
 * Realisations of content-addressed derivation outputs (`realisations/<id>.doi`), as Nix 2.8
 * reads and writes them: `{"dependentRealisations":{id: outPath},"id":…,"outPath":…,
 * "signatures":[…]}`, keys sorted (nlohmann's std::map), store paths as base names. The signed
 * fingerprint is that JSON without "signatures", compact. Pure: no I/O.
 */
import { NixFormatError } from "./errors.ts";
import { parseBaseName } from "./store-path.ts";

/** `sha256:<hex>!<output>`: the derivation's hash modulo and the output name (DrvOutput). */
const DRV_OUTPUT = /^sha256:([0-9a-f]{64})!([A-Za-z0-9+\-._?=]{1,211})$/;

export interface DrvOutputId {
  drvHash: string;
  outputName: string;
}

export function parseDrvOutputId(s: string): DrvOutputId {
  const m = DRV_OUTPUT.exec(s);
  if (!m || (m[2] as string).startsWith(".")) {
    throw new NixFormatError(`invalid derivation output id ${JSON.stringify(s.slice(0, 120))}: expected "sha256:<64 hex digits>!<output name>"`);
  }
  return { drvHash: m[1] as string, outputName: m[2] as string };
}

export interface Realisation {
  id: string;
  /** Base name `<hash>-<name>`. */
  outPath: string;
  signatures: string[];
  /** Derivation output id → base name of its out path. */
  dependentRealisations: Map<string, string>;
}

const SIGNATURE = /^[A-Za-z0-9+\-._]{1,100}:[A-Za-z0-9+/]{86}==$/;

/** Validates untrusted JSON; every problem is a NixFormatError naming the field. */
export function parseRealisation(json: unknown): Realisation {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new NixFormatError("a realisation must be a JSON object");
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!["id", "outPath", "signatures", "dependentRealisations"].includes(k)) throw new NixFormatError(`unknown realisation field ${JSON.stringify(k.slice(0, 60))}`);
  }
  if (typeof o.id !== "string") throw new NixFormatError('"id" must be a string');
  parseDrvOutputId(o.id);
  if (typeof o.outPath !== "string") throw new NixFormatError('"outPath" must be a string');
  parseBaseName(o.outPath);
  const signatures: string[] = [];
  if (o.signatures !== undefined) {
    if (!Array.isArray(o.signatures) || o.signatures.length > 100) throw new NixFormatError('"signatures" must be an array of at most 100 signatures');
    for (const s of o.signatures) {
      if (typeof s !== "string" || !SIGNATURE.test(s)) throw new NixFormatError(`"signatures": ${JSON.stringify(String(s).slice(0, 120))} is not a Nix signature (<key name>:<base64 Ed25519 signature>)`);
      signatures.push(s);
    }
  }
  const dependentRealisations = new Map<string, string>();
  if (o.dependentRealisations !== undefined) {
    const d = o.dependentRealisations;
    if (typeof d !== "object" || d === null || Array.isArray(d)) throw new NixFormatError('"dependentRealisations" must be an object');
    const entries = Object.entries(d as Record<string, unknown>);
    if (entries.length > 10_000) throw new NixFormatError('"dependentRealisations" has more than 10000 entries');
    for (const [id, path] of entries) {
      parseDrvOutputId(id);
      if (typeof path !== "string") throw new NixFormatError(`"dependentRealisations": the out path of ${id} must be a string`);
      parseBaseName(path);
      dependentRealisations.set(id, path);
    }
  }
  return { id: o.id, outPath: o.outPath, signatures: [...new Set(signatures)].sort(), dependentRealisations };
}

function dependentsJson(r: Realisation): string {
  const ids = [...r.dependentRealisations.keys()].sort();
  return `{${ids.map((id) => `${JSON.stringify(id)}:${JSON.stringify(r.dependentRealisations.get(id))}`).join(",")}}`;
}

/** What Nix signs and verifies (Realisation::fingerprint). */
export function realisationFingerprint(r: Realisation): string {
  return `{"dependentRealisations":${dependentsJson(r)},"id":${JSON.stringify(r.id)},"outPath":${JSON.stringify(r.outPath)}}`;
}

/** The `.doi` file, as Nix writes it (signatures sorted, as Nix's std::set keeps them). */
export function renderRealisation(r: Realisation): string {
  const sigs = [...new Set(r.signatures)].sort();
  return `{"dependentRealisations":${dependentsJson(r)},"id":${JSON.stringify(r.id)},"outPath":${JSON.stringify(r.outPath)},"signatures":${JSON.stringify(sigs)}}`;
}
