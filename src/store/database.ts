/** Opening a run's SQLite file: its connection settings, and creating or migrating its schema. */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import Database from "better-sqlite3"
import { BASE_VERSION, DB_FILE, DDL, LEDGER_DDL, MIGRATIONS, SCHEMA_VERSION } from "./schema.ts"
import { StoreError } from "./StoreError.ts"

export const openDatabase = (dir: string): Database.Database => {
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, DB_FILE))
  db.pragma("journal_mode = WAL")
  // NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last ones,
  // which resume then re-evaluates.
  db.pragma("synchronous = NORMAL")
  db.pragma("foreign_keys = ON")
  return db
}

export const ensureSchema = (db: Database.Database, path: string): void => {
  let version = db.pragma("user_version", { simple: true }) as number
  db.transaction(() => {
    if (version === 0) {
      const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }
      if (tables.n !== 0) throw new StoreError({ reason: "schema", detail: `${path} has tables but no schema version` })
      db.exec(DDL)
      version = BASE_VERSION
    } else if (version < BASE_VERSION || version > SCHEMA_VERSION) {
      throw new StoreError({
        reason: "schema",
        detail: `${path} has schema version ${version}, this build reads ${BASE_VERSION} to ${SCHEMA_VERSION}`
      })
    }
    for (const m of MIGRATIONS) if (m.version > version) db.exec(m.ddl)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
  db.exec(LEDGER_DDL)
}
