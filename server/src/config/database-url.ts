/**
 * Database URLs as people write them: a password may hold `@`, `:`, `/` or `%` unencoded (an
 * RDS-generated password often does). The userinfo is everything between `//` and the last `@`,
 * so such a password is neither split into the host (where an error message would print its tail)
 * nor shown by redactUrl. The one place that takes a URL apart; the price is that an `@` in a
 * query parameter must be percent-encoded.
 */

export interface UrlParts {
  /** "postgres://" (or "postgresql://") */
  scheme: string;
  user?: string;
  password?: string;
  /** Host, port, path and query: everything after the userinfo. */
  rest: string;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    // Not valid percent-encoding, so it was meant literally.
    return s;
  }
}

export function splitUrl(url: string): UrlParts | undefined {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(url);
  if (!m) return undefined;
  const scheme = m[1] as string;
  const after = m[2] as string;
  const at = after.lastIndexOf("@");
  if (at < 0) return { scheme, rest: after };
  const userinfo = after.slice(0, at);
  const colon = userinfo.indexOf(":");
  return {
    scheme,
    user: decode(colon < 0 ? userinfo : userinfo.slice(0, colon)),
    ...(colon >= 0 && { password: decode(userinfo.slice(colon + 1)) }),
    rest: after.slice(at + 1),
  };
}

export function joinUrl(p: UrlParts): string {
  const userinfo =
    p.user === undefined && p.password === undefined
      ? ""
      : `${encodeURIComponent(p.user ?? "")}${p.password === undefined ? "" : `:${encodeURIComponent(p.password)}`}@`;
  return `${p.scheme}${userinfo}${p.rest}`;
}

/** The URL with its userinfo percent-encoded, so every URL parser reads the host where it is. */
export function normalizeUrl(url: string): string {
  const parts = splitUrl(url);
  return parts ? joinUrl(parts) : url;
}

const REDACTED = "[redacted]";

/** The URL fit for messages and logs: the password (everything up to the last `@` after the user) is replaced. */
export function redactUrl(url: string): string {
  const parts = splitUrl(url);
  if (!parts) return url.includes("@") ? "(a URL that cannot be shown)" : url;
  if (parts.password === undefined) return joinUrl(parts);
  return `${parts.scheme}${encodeURIComponent(parts.user ?? "")}:${REDACTED}@${parts.rest}`;
}

// In free text a URL ends at white space: its userinfo runs from "//user:" to the last "@" before
// that, so a password with "@", "/", "#" or "?" in it is covered whole.
const URL_PASSWORD_IN_TEXT = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)\S*@/gi;

/** `text` with the password of every URL in it replaced (log lines, error messages). */
export function redactUrlsIn(text: string): string {
  return text.replace(URL_PASSWORD_IN_TEXT, `$1${REDACTED}@`);
}
