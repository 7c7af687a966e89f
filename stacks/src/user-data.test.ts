import { describe, expect, it } from "vitest";
import { renderNixosConfig } from "./user-data.ts";
import type { HostNixosConfig } from "./user-data.ts";
import { secretProblems } from "./policy.ts";

const config: HostNixosConfig = {
  mode: "monolithic",
  nixosRelease: "25.05",
  larderSource: { url: "https://example.com/larder/archive/abc.tar.gz", sha256: "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
  region: "eu-west-1",
  bucket: "${aws_s3_bucket.cache.bucket}",
  databaseHost: "${aws_db_instance.db.address}",
  databasePort: 5432,
  databaseName: "larder",
  databaseSecretArn: "${aws_db_instance.db.master_user_secret[0].secret_arn}",
  tokenSecretArn: "${aws_secretsmanager_secret.token.arn}",
  domain: "cache.example.net",
  tls: "acme",
  acmeEmail: "ops@example.net",
};

describe("renderNixosConfig", () => {
  const text = renderNixosConfig(config);

  it("imports larder's aws-host profile from the pinned tarball", () => {
    expect(text).toContain('url = "https://example.com/larder/archive/abc.tar.gz";');
    expect(text).toContain('sha256 = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";');
    expect(text).toContain('imports = [ (larder + "/nixos-modules/aws-host.nix") ];');
  });

  it("configures services.larder.aws with the mode, the bucket, the name and how TLS ends", () => {
    expect(text).toMatch(/services\.larder\.aws = \{\n\s+mode = "monolithic";\n\s+region = "eu-west-1";\n\s+bucket = "\$\{aws_s3_bucket\.cache\.bucket\}";/);
    expect(text).toContain('domain = "cache.example.net";');
    expect(text).toContain('tls = "acme";');
    expect(text).toContain('acmeEmail = "ops@example.net";');
  });

  it("passes the secrets' ARNs and the database's address, never a credential", () => {
    expect(text).toContain('masterUserSecretArn = "${aws_db_instance.db.master_user_secret[0].secret_arn}";');
    expect(text).toContain('tokenSecretArn = "${aws_secretsmanager_secret.token.arn}";');
    expect(text).toContain("port = 5432;");
    expect(text).not.toMatch(/password|token-hs256-secret-base64|database\.url|url = "postgres/);
    expect(secretProblems(text)).toEqual([]);
  });

  it("uses no Nix interpolation, so every ${ is a Terraform reference", () => {
    const interpolations = text.match(/\$\{[^}]*\}/g) ?? [];
    expect(interpolations.length).toBeGreaterThan(0);
    for (const found of interpolations) expect(found).toMatch(/^\$\{aws_[a-z0-9_]+\.[a-z]+\.[a-z_\[\]0-9.]+\}$/);
  });

  it("writes null for a host without its own certificate", () => {
    const plain = renderNixosConfig({ ...config, mode: "api-server", tls: "load-balancer", acmeEmail: undefined });
    expect(plain).toContain("acmeEmail = null;");
    expect(plain).toContain('tls = "load-balancer";');
    expect(plain).toContain('mode = "api-server";');
  });

  it("escapes quotes and backslashes in values", () => {
    expect(renderNixosConfig({ ...config, region: 'a"b\\c' })).toContain('region = "a\\"b\\\\c";');
  });
});
