/**
 * Revoked tokens, checked on every authenticated request. The list is small and read from the
 * database at most every few seconds, so revocation costs no query per request and reaches every
 * api-server within `refreshMs`.
 */
import type { Db } from "../db/connect.ts";
import type { TokenClaims } from "./tokens.ts";

export interface Revocations {
  isRevoked(claims: TokenClaims): Promise<boolean>;
  /** The same answer from the list in memory, or undefined when the list is due for a reload. */
  isRevokedNow(claims: TokenClaims): boolean | undefined;
  revokeJti(jti: string): Promise<void>;
  /** Revokes every token of `subject` issued before `before` (epoch ms). */
  revokeSubject(subject: string, before?: number): Promise<void>;
  invalidate(): void;
}

export function createRevocations(db: Db, refreshMs = 5000): Revocations {
  let jtis = new Set<string>();
  let subjects = new Map<string, number>();
  let loadedAt = 0;
  let loading: Promise<void> | undefined;

  async function load(): Promise<void> {
    const rows = await db.kysely.selectFrom("revoked_token").select(["jti", "subject", "issued_before"]).execute();
    const nextJtis = new Set<string>();
    const nextSubjects = new Map<string, number>();
    for (const r of rows) {
      if (r.jti !== null) nextJtis.add(r.jti);
      if (r.subject !== null) nextSubjects.set(r.subject, Math.max(nextSubjects.get(r.subject) ?? 0, r.issued_before ?? Number.MAX_SAFE_INTEGER));
    }
    jtis = nextJtis;
    subjects = nextSubjects;
    loadedAt = Date.now();
  }

  async function fresh(): Promise<void> {
    if (Date.now() - loadedAt < refreshMs) return;
    loading ??= load().finally(() => (loading = undefined));
    await loading;
  }

  function listed(claims: TokenClaims): boolean {
    if (claims.jti !== undefined && jtis.has(claims.jti)) return true;
    const before = subjects.get(claims.sub);
    if (before === undefined) return false;
    const issuedMs = (claims.iat ?? claims.nbf ?? 0) * 1000;
    return issuedMs < before;
  }

  return {
    async isRevoked(claims) {
      await fresh();
      return listed(claims);
    },
    isRevokedNow(claims) {
      if (Date.now() - loadedAt >= refreshMs) return undefined;
      return listed(claims);
    },
    async revokeJti(jti) {
      await db.kysely.insertInto("revoked_token").values({ jti, subject: null, issued_before: null, created_at: Date.now() }).execute();
      loadedAt = 0;
    },
    async revokeSubject(subject, before = Date.now()) {
      await db.kysely.insertInto("revoked_token").values({ jti: null, subject, issued_before: before, created_at: Date.now() }).execute();
      loadedAt = 0;
    },
    invalidate() {
      loadedAt = 0;
    },
  };
}
