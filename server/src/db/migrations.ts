/**
 * Dated migrations, one list for both dialects. Ids differ per dialect (SQLite's rowid alias vs
 * a bigint identity); everything else is portable SQL types.
 */
import type { Kysely } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";

export type Dialect = "sqlite" | "postgres";

function migrations(dialect: Dialect): Record<string, Migration> {
  const id = (t: any) =>
    dialect === "sqlite"
      ? t.addColumn("id", "integer", (c: any) => c.primaryKey().autoIncrement())
      : t.addColumn("id", "bigint", (c: any) => c.primaryKey().generatedByDefaultAsIdentity());
  const ref = "bigint";
  return {
    "2026-11-22-001-initial": {
      async up(db: Kysely<any>) {
        await id(db.schema.createTable("cache"))
          .addColumn("name", "varchar(50)", (c: any) => c.notNull().unique())
          .addColumn("keypair", "text", (c: any) => c.notNull())
          .addColumn("key_version", "integer", (c: any) => c.notNull().defaultTo(1))
          .addColumn("is_public", "integer", (c: any) => c.notNull())
          .addColumn("store_dir", "text", (c: any) => c.notNull())
          .addColumn("priority", "integer", (c: any) => c.notNull())
          .addColumn("upstream_cache_key_names", "text", (c: any) => c.notNull())
          .addColumn("retention_period", "bigint")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addColumn("deleted_at", "bigint")
          .execute();
        await id(db.schema.createTable("nar"))
          .addColumn("nar_hash", "varchar(64)", (c: any) => c.notNull().unique())
          .addColumn("nar_size", "bigint", (c: any) => c.notNull())
          .addColumn("compression", "varchar(10)", (c: any) => c.notNull())
          .addColumn("file_hash", "varchar(52)", (c: any) => c.notNull())
          .addColumn("file_size", "bigint", (c: any) => c.notNull())
          .addColumn("storage_key", "text", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("nar_file_hash").on("nar").column("file_hash").execute();
        await id(db.schema.createTable("object"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("nar_id", ref, (c: any) => c.notNull().references("nar.id"))
          .addColumn("store_path_hash", "varchar(32)", (c: any) => c.notNull())
          .addColumn("store_path", "text", (c: any) => c.notNull())
          .addColumn("refs", "text", (c: any) => c.notNull())
          .addColumn("deriver", "text")
          .addColumn("ca", "text")
          .addColumn("system", "text")
          .addColumn("sigs", "text", (c: any) => c.notNull())
          .addColumn("upload_file_hash", "varchar(52)")
          .addColumn("signature", "text")
          .addColumn("signature_key_version", "integer")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addColumn("last_accessed_at", "bigint", (c: any) => c.notNull())
          .addColumn("created_by", "text")
          .addUniqueConstraint("object_cache_path", ["cache_id", "store_path_hash"])
          .execute();
        await db.schema.createIndex("object_nar").on("object").column("nar_id").execute();
        await db.schema.createIndex("object_upload_file").on("object").columns(["cache_id", "upload_file_hash"]).execute();
        await id(db.schema.createTable("staged_nar"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("upload_file_hash", "varchar(52)", (c: any) => c.notNull())
          .addColumn("upload_file_size", "bigint", (c: any) => c.notNull())
          .addColumn("nar_id", ref, (c: any) => c.notNull().references("nar.id"))
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("staged_nar_cache_file", ["cache_id", "upload_file_hash"])
          .execute();
        await db.schema.createIndex("staged_nar_nar").on("staged_nar").column("nar_id").execute();
        await id(db.schema.createTable("pin"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("name", "text", (c: any) => c.notNull())
          .addColumn("store_path_hash", "varchar(32)", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("pin_cache_name", ["cache_id", "name"])
          .execute();
        await id(db.schema.createTable("revoked_token"))
          .addColumn("jti", "text")
          .addColumn("subject", "text")
          .addColumn("issued_before", "bigint")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .execute();
      },
    },
    "2026-11-22-002-references-and-storage-journal": {
      async up(db: Kysely<any>) {
        // References as rows, so GC asks "does anything left in this cache refer to X?" with an index.
        await db.schema
          .createTable("object_ref")
          .addColumn("object_id", ref, (c: any) => c.notNull().references("object.id").onDelete("cascade"))
          .addColumn("cache_id", ref, (c: any) => c.notNull())
          .addColumn("ref_hash", "varchar(32)", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("object_ref_target").on("object_ref").columns(["cache_id", "ref_hash"]).execute();
        await db.schema.createIndex("object_ref_object").on("object_ref").column("object_id").execute();
        // Storage writes and deletes in progress: whatever a crash leaves here, the next GC finishes.
        await db.schema
          .createTable("storage_journal")
          .addColumn("storage_key", "varchar(255)", (c: any) => c.primaryKey())
          .addColumn("kind", "varchar(10)", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .execute();
      },
    },
    "2026-12-03-001-nar-listings": {
      async up(db: Kysely<any>) {
        // One listing per NAR, made in the ingest parse; `listing` null means "too large to keep".
        await db.schema
          .createTable("nar_listing")
          .addColumn("nar_id", ref, (c: any) => c.primaryKey().references("nar.id").onDelete("cascade"))
          .addColumn("listing", dialect === "sqlite" ? "blob" : "bytea")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .execute();
      },
    },
    "2026-12-03-002-build-logs": {
      async up(db: Kysely<any>) {
        // No foreign key to cache: a destroyed cache's logs must outlive its row until GC has
        // deleted their bytes (a cascade would drop the rows and leak the storage objects).
        await id(db.schema.createTable("build_log"))
          .addColumn("cache_id", ref, (c: any) => c.notNull())
          .addColumn("drv_name", "varchar(255)", (c: any) => c.notNull())
          .addColumn("storage_key", "text", (c: any) => c.notNull())
          .addColumn("size", "bigint", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("build_log_cache_drv", ["cache_id", "drv_name"])
          .execute();
        // GC asks whether any output of a log's derivation is left in the cache.
        await db.schema.createIndex("object_deriver").on("object").columns(["cache_id", "deriver"]).execute();
      },
    },
    "2026-12-03-003-gc-access-index": {
      async up(db: Kysely<any>) {
        // GC walks a cache's expired objects newest first and resumes each batch where the last
        // stopped: without this index every batch rescanned the whole cache (docs/PERFORMANCE.md).
        await db.schema.createIndex("object_cache_access").on("object").columns(["cache_id", "last_accessed_at", "id"]).execute();
      },
    },
    "2026-12-03-004-realisations": {
      async up(db: Kysely<any>) {
        await id(db.schema.createTable("realisation"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("drv_output", "varchar(300)", (c: any) => c.notNull())
          .addColumn("out_path", "varchar(255)", (c: any) => c.notNull())
          .addColumn("out_path_hash", "varchar(32)", (c: any) => c.notNull())
          .addColumn("dependents", "text", (c: any) => c.notNull())
          .addColumn("sigs", "text", (c: any) => c.notNull())
          .addColumn("signature", "text")
          .addColumn("signature_key_version", "integer")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("realisation_cache_output", ["cache_id", "drv_output"])
          .execute();
        await db.schema.createIndex("realisation_out_path").on("realisation").columns(["cache_id", "out_path_hash"]).execute();
      },
    },
    "2026-12-03-20-cachix": {
      async up(db: Kysely<any>) {
        // A Cachix multipart upload: its parts land in storage under cachix-parts/<nar_uuid>/ and
        // become a NAR only at complete, through the ingest pipeline.
        await id(db.schema.createTable("cachix_upload"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("nar_uuid", "varchar(36)", (c: any) => c.notNull().unique())
          .addColumn("upload_id", "varchar(64)", (c: any) => c.notNull())
          // Key of the HMAC that part URLs served by larderd carry.
          .addColumn("secret", "varchar(64)", (c: any) => c.notNull())
          .addColumn("compression", "varchar(8)", (c: any) => c.notNull())
          .addColumn("state", "varchar(12)", (c: any) => c.notNull())
          .addColumn("completed_store_hash", "varchar(32)")
          .addColumn("created_by", "text")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addColumn("updated_at", "bigint", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("cachix_upload_updated").on("cachix_upload").column("updated_at").execute();
        await db.schema
          .createTable("cachix_part")
          .addColumn("upload_id", ref, (c: any) => c.notNull().references("cachix_upload.id").onDelete("cascade"))
          .addColumn("part_number", "integer", (c: any) => c.notNull())
          .addColumn("content_md5", "varchar(32)", (c: any) => c.notNull())
          // Set once larderd has stored the part itself (local storage); S3 parts are found by HEAD.
          .addColumn("size", "bigint")
          .addPrimaryKeyConstraint("cachix_part_pk", ["upload_id", "part_number"])
          .execute();
        // A completed path whose references have not all arrived: invisible until they do. Its
        // staged_nar row keeps the NAR from GC and, when GC expires it, takes this row with it.
        await id(db.schema.createTable("cachix_pending"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("staged_id", ref, (c: any) => c.notNull().references("staged_nar.id").onDelete("cascade"))
          .addColumn("store_path_hash", "varchar(32)", (c: any) => c.notNull())
          .addColumn("object", "text", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("cachix_pending_cache_path", ["cache_id", "store_path_hash"])
          .execute();
        await db.schema.createIndex("cachix_pending_staged").on("cachix_pending").column("staged_id").execute();
        await db.schema
          .createTable("cachix_pending_ref")
          .addColumn("pending_id", ref, (c: any) => c.notNull().references("cachix_pending.id").onDelete("cascade"))
          .addColumn("cache_id", ref, (c: any) => c.notNull())
          .addColumn("ref_hash", "varchar(32)", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("cachix_pending_ref_hash").on("cachix_pending_ref").columns(["cache_id", "ref_hash"]).execute();
        await db.schema.createIndex("cachix_pending_ref_pending").on("cachix_pending_ref").column("pending_id").execute();
        // Public keys registered by `cachix generate-keypair`, whose signatures the client sends.
        await id(db.schema.createTable("cachix_key"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("key_name", "varchar(255)", (c: any) => c.notNull())
          .addColumn("public_key", "varchar(64)", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("cachix_key_cache_key", ["cache_id", "public_key"])
          .execute();
      },
    },
    "2026-12-03-50-deploy": {
      async up(db: Kysely<any>) {
        // larder deploy (issue 18). Every piece of rollout state is here, so a restarted or a
        // second api-server carries on from the rows alone; JSON columns hold what is only ever
        // read whole (targets, rollout settings).
        await id(db.schema.createTable("deploy_environment"))
          .addColumn("cache_id", ref, (c: any) => c.notNull().references("cache.id").onDelete("cascade"))
          .addColumn("name", "varchar(50)", (c: any) => c.notNull())
          .addColumn("generation", "bigint", (c: any) => c.notNull().defaultTo(0))
          .addColumn("current_deployment_id", ref)
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("deploy_environment_cache_name", ["cache_id", "name"])
          .execute();
        await id(db.schema.createTable("deployment"))
          .addColumn("environment_id", ref, (c: any) => c.notNull().references("deploy_environment.id").onDelete("cascade"))
          .addColumn("state", "varchar(20)", (c: any) => c.notNull())
          .addColumn("targets", "text", (c: any) => c.notNull())
          .addColumn("rollout", "text", (c: any) => c.notNull())
          .addColumn("previous", "text", (c: any) => c.notNull())
          .addColumn("created_by", "text")
          .addColumn("message", "text")
          .addColumn("rollback_of", ref)
          .addColumn("reason", "text")
          .addColumn("migration_state", "varchar(10)", (c: any) => c.notNull())
          .addColumn("migration_agent", "varchar(63)")
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addColumn("finished_at", "bigint")
          .execute();
        await db.schema.createIndex("deployment_environment").on("deployment").columns(["environment_id", "id"]).execute();
        await id(db.schema.createTable("deploy_agent"))
          .addColumn("environment_id", ref, (c: any) => c.notNull().references("deploy_environment.id").onDelete("cascade"))
          .addColumn("name", "varchar(63)", (c: any) => c.notNull())
          .addColumn("group_name", "varchar(50)", (c: any) => c.notNull())
          .addColumn("state", "varchar(20)", (c: any) => c.notNull())
          .addColumn("current_path", "text")
          .addColumn("deployment_id", ref)
          // The deployment this agent was given a slot in, and what it ran before switching.
          .addColumn("run_deployment_id", ref)
          .addColumn("previous_path", "text")
          .addColumn("slot_deployment_id", ref)
          .addColumn("slot_granted_at", "bigint")
          .addColumn("message", "text")
          .addColumn("last_seen_at", "bigint", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("deploy_agent_environment_name", ["environment_id", "name"])
          .execute();
        await id(db.schema.createTable("deploy_log"))
          .addColumn("deployment_id", ref, (c: any) => c.notNull().references("deployment.id").onDelete("cascade"))
          .addColumn("agent", "varchar(63)", (c: any) => c.notNull())
          .addColumn("step", "varchar(20)", (c: any) => c.notNull())
          .addColumn("ok", "integer", (c: any) => c.notNull())
          .addColumn("log", "text", (c: any) => c.notNull())
          .addColumn("created_at", "bigint", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("deploy_log_deployment").on("deploy_log").columns(["deployment_id", "agent", "id"]).execute();
      },
    },
    "2026-12-03-40-bucket-layout": {
      async up(db: Kysely<any>) {
        await db.schema.alterTable("cache").addColumn("bucket_layout", "integer", (c: any) => c.notNull().defaultTo(0)).execute();
        // What larder has written (or is writing) to a public cache's bucket layout. No foreign key to
        // cache: entries of a destroyed cache must outlive its row until their keys are deleted.
        await id(db.schema.createTable("bucket_entry"))
          .addColumn("cache_id", ref, (c: any) => c.notNull())
          .addColumn("prefix", "varchar(300)", (c: any) => c.notNull())
          .addColumn("kind", "varchar(12)", (c: any) => c.notNull())
          .addColumn("name", "varchar(300)", (c: any) => c.notNull())
          .addColumn("nar_key", "varchar(300)")
          .addColumn("state", "varchar(12)", (c: any) => c.notNull())
          .addColumn("key_version", "integer", (c: any) => c.notNull())
          .addColumn("updated_at", "bigint", (c: any) => c.notNull())
          .addUniqueConstraint("bucket_entry_cache_name", ["cache_id", "kind", "name"])
          .execute();
        await db.schema.createIndex("bucket_entry_nar_key").on("bucket_entry").columns(["prefix", "nar_key"]).execute();
        // Which published entries a layout entry needs (a narinfo's references, a realisation's output):
        // removal asks "does a remaining entry still need this one?".
        await db.schema
          .createTable("bucket_ref")
          .addColumn("entry_id", ref, (c: any) => c.notNull().references("bucket_entry.id").onDelete("cascade"))
          .addColumn("cache_id", ref, (c: any) => c.notNull())
          .addColumn("ref_hash", "varchar(32)", (c: any) => c.notNull())
          .execute();
        await db.schema.createIndex("bucket_ref_target").on("bucket_ref").columns(["cache_id", "ref_hash"]).execute();
        await db.schema.createIndex("bucket_ref_entry").on("bucket_ref").columns(["entry_id"]).execute();
      },
    },
    "2026-12-03-30-storage-backends": {
      async up(db: Kysely<any>) {
        // Every stored object names its backend. Rows from before there were several belong to the
        // one backend there was, which is "default" unless the config names it otherwise (then
        // larderd refuses to start until the operator renames it: larderd storage rename-backend).
        for (const table of ["nar", "build_log", "storage_journal"]) {
          await db.schema.alterTable(table).addColumn("backend", "varchar(32)", (c: any) => c.notNull().defaultTo("default")).execute();
        }
        // A moved NAR's old copy is deleted only after this time (readers may still be pointed at it).
        await db.schema.alterTable("storage_journal").addColumn("delete_after", "bigint").execute();
        // Bytes an entry still occupies until it is deleted (counted against the backend's capacity).
        await db.schema.alterTable("storage_journal").addColumn("size", "bigint").execute();
        // Bytes stored per backend (capacity, least-used) summed from the index alone.
        await db.schema.createIndex("nar_backend_size").on("nar").columns(["backend", "file_size"]).execute();
        // A backend being drained takes no new objects; every server reads this with its usage.
        await db.schema
          .createTable("storage_backend")
          .addColumn("name", "varchar(32)", (c: any) => c.primaryKey())
          .addColumn("draining", "integer", (c: any) => c.notNull().defaultTo(0))
          .addColumn("updated_at", "bigint", (c: any) => c.notNull())
          .execute();
      },
    },
  };
}

export function migrationProvider(dialect: Dialect): MigrationProvider {
  return { getMigrations: async () => migrations(dialect) };
}
