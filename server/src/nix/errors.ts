/** Input did not follow one of Nix's wire formats (hashes, store paths, narinfo, NAR, keys). */
export class NixFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NixFormatError";
  }
}

/** A narinfo field was missing or malformed; `field` names the narinfo key (e.g. "NarHash"). */
export class NarInfoError extends NixFormatError {
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.name = "NarInfoError";
    this.field = field;
  }
}
