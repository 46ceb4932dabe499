import t from "tap"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { Effect, Exit } from "effect"
import { Store, layer, stableJson } from "../../src/store/Store.ts"
import { DB_FILE, SCHEMA_VERSION } from "../../src/store/schema.ts"

const tempDir = (t: { teardown(f: () => void): unknown }): string => {
  const dir = mkdtempSync(join(tmpdir(), "autoloss-store-"))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const withStore = <A, E>(dir: string, f: (s: typeof Store.Service) => Effect.Effect<A, E>) =>
  Effect.runPromiseExit(Effect.flatMap(Store, f).pipe(Effect.provide(layer(dir))))

const proposal = (id: number, hash = `h${id}`) => ({
  id,
  text: `neg(y_hat)#${id}`,
  wire: { v: 1, branches: [] },
  hash,
  parentId: null,
  how: "random",
  proposedAt: 0,
  duplicateOf: null
})

t.test("creates a versioned WAL database and checks the run config on reopen", async (t) => {
  const dir = tempDir(t)
  const first = await withStore(dir, (s) => s.openRun({ b: 1, a: [1, 2] }))
  t.same(Exit.isSuccess(first) && first.value, { resumed: false })
  const again = await withStore(dir, (s) => s.openRun({ a: [1, 2], b: 1 }))
  t.same(Exit.isSuccess(again) && again.value, { resumed: true }, "key order does not matter")
  const other = await withStore(dir, (s) => s.openRun({ a: [1, 3], b: 1 }))
  t.match(Exit.isFailure(other) && JSON.stringify(other.cause), /"reason":"config"/)
  const db = new Database(join(dir, DB_FILE), { readonly: true })
  t.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION)
  t.equal(db.pragma("journal_mode", { simple: true }), "wal")
  db.close()
  t.equal(stableJson({ b: { d: 1, c: 2 }, a: 0 }), '{"a":0,"b":{"c":2,"d":1}}')
})

t.test("refuses a database of another schema version", async (t) => {
  const dir = tempDir(t)
  const db = new Database(join(dir, DB_FILE))
  db.pragma("user_version = 99")
  db.close()
  const exit = await withStore(dir, (s) => s.openRun({}))
  t.match(Exit.isFailure(exit) && JSON.stringify(exit.cause), /"reason":"schema".*version 99/)
})

t.test("results round-trip, NaN and infinities included; replayed proposals are checked", async (t) => {
  const dir = tempDir(t)
  const exit = await withStore(dir, (s) =>
    Effect.gen(function* () {
      yield* s.openRun({})
      t.same(yield* s.putProposal(proposal(0)), { stored: null })
      t.same(yield* s.putProposal(proposal(0)), { stored: "proposed" })
      t.equal(yield* s.screenResult(0), undefined)
      const branch = { passed: true, score: NaN, gradNorms: [1.5, NaN, Infinity], fingerprint: [[-Infinity, 0.5]], invalid: false }
      const screen = { ...branch, branches: { loss: branch } }
      yield* s.putScreenResult(0, { result: screen, elapsedMs: 12 })
      t.same(yield* s.screenResult(0), { result: screen, elapsedMs: 12 })
      yield* s.commitVerdict({ id: 0, status: "admitted", staticBranch: null, staticReason: null, equivalenceKey: "k", admissionIndex: 0, rejection: branch }, { admitted: 1 })
      const train = { metrics: { miou: 0.25 }, target: 0.25, invalid: false, workerId: "w1", attempt: 2 }
      yield* s.putTrainResult(0, { result: train, elapsedMs: 99 })
      t.same(yield* s.trainResult(0), { result: train, elapsedMs: 99 })
      const rows = yield* s.candidates()
      t.match(rows[0], { id: 0, status: "trained", equivalenceKey: "k", admissionIndex: 0, rejectionPassed: true })
      return yield* s.putProposal(proposal(0, "other"))
    })
  )
  t.match(Exit.isFailure(exit) && JSON.stringify(exit.cause), /"reason":"diverged".*candidate 0 was stored with hash h0/)
})

t.test("an outcome, its checkpoint, the population and counters commit together or not at all", async (t) => {
  const dir = tempDir(t)
  const ok = await withStore(dir, (s) =>
    Effect.gen(function* () {
      yield* s.openRun({})
      yield* s.putProposal(proposal(0))
      yield* s.putProposal(proposal(1))
      yield* s.commitOutcome(
        { id: 0, score: -Infinity, reusedFrom: null, reuseKind: null },
        { observations: 1, scheduler: { rng: "a" }, engine: {} },
        [{ candidateId: 0, score: -Infinity }],
        { observed: 1 }
      )
    })
  )
  t.ok(Exit.isSuccess(ok))
  // Candidate 42 does not exist: the population row violates its foreign key, the whole commit rolls back.
  const bad = await withStore(dir, (s) =>
    s.commitOutcome(
      { id: 1, score: 0.5, reusedFrom: null, reuseKind: null },
      { observations: 2, scheduler: { rng: "b" }, engine: {} },
      [{ candidateId: 0, score: -Infinity }, { candidateId: 42, score: 0.5 }],
      { observed: 2 }
    )
  )
  t.match(Exit.isFailure(bad) && JSON.stringify(bad.cause), /"reason":"query".*commitOutcome\(1\)/)
  const after = await withStore(dir, (s) =>
    Effect.all({ cp: s.checkpoint(), pop: s.population(), counters: s.counters(), rows: s.candidates() })
  )
  if (!Exit.isSuccess(after)) return t.fail("reading back failed")
  t.same(after.value.cp, { observations: 1, scheduler: { rng: "a" }, engine: {} })
  t.same(after.value.pop, [{ candidateId: 0, score: -Infinity }])
  t.same(after.value.counters, { observed: 1 })
  t.same(after.value.rows.map((r) => r.status), ["evaluated", "proposed"])
})

t.test("a version-2 run gains the selection tables when opened, its rows untouched", async (t) => {
  const dir = tempDir(t)
  // A version-2 database as the previous build wrote it: the base DDL, user_version 2, one proposal.
  const { DDL, BASE_VERSION } = await import("../../src/store/schema.ts")
  const old = new Database(join(dir, DB_FILE))
  old.exec(DDL)
  old.pragma(`user_version = ${BASE_VERSION}`)
  old.prepare("INSERT INTO run (id, schema_version, config, created_at) VALUES (1, 2, '{}', 0)").run()
  old.prepare("INSERT INTO candidates (id, text, wire, hash, how, status, proposed_at) VALUES (0, 't', '{}', 'h0', '\"random\"', 'proposed', 0)").run()
  old.close()
  const exit = await withStore(dir, (s) =>
    Effect.gen(function* () {
      t.same(yield* s.openRun({}), { resumed: true })
      t.equal(yield* s.selection(), undefined)
      t.same(yield* s.holdoutRuns(), [])
      return (yield* s.candidates()).map((c) => c.hash)
    })
  )
  t.same(Exit.isSuccess(exit) && exit.value, ["h0"])
  const db = new Database(join(dir, DB_FILE), { readonly: true })
  t.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION)
  db.close()
})

/** A run database as the build of schema `version` left it: its migrations applied, one `run` row, still open. */
const databaseAtVersion = async (dir: string, version: number) => {
  const { DDL, BASE_VERSION, MIGRATIONS } = await import("../../src/store/schema.ts")
  const db = new Database(join(dir, DB_FILE))
  db.exec(DDL)
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) db.exec(m.ddl)
  db.pragma(`user_version = ${version}`)
  db.prepare("INSERT INTO run (id, schema_version, config, created_at) VALUES (1, ?, '{}', 0)").run(BASE_VERSION)
  return db
}

t.test("a version-4 run gains rung_results.resumed_from when opened; its rung rows read as trained from step 0", async (t) => {
  const dir = tempDir(t)
  const old = await databaseAtVersion(dir, 4)
  old.prepare("INSERT INTO candidates (id, text, wire, hash, how, status, proposed_at) VALUES (0, 't', '{}', 'h0', '\"random\"', 'proposed', 0)").run()
  old.prepare(`INSERT INTO rung_results (candidate_id, rung, iterations, metrics, target, invalid, elapsed_ms, worker, attempt, pid, recorded_at)
               VALUES (0, 1, 100, '{"miou":0.3}', 0.3, 0, 5, NULL, NULL, 1, 0)`).run()
  old.close()
  const training = (target: number, resumedFrom?: number) =>
    ({ result: { metrics: { miou: target }, target, invalid: false, ...(resumedFrom === undefined ? {} : { resumedFrom }) }, elapsedMs: 5 })
  const exit = await withStore(dir, (s) =>
    Effect.gen(function* () {
      yield* s.openRun({})
      yield* s.putRungResult(0, 2, 300, training(0.4, 100))
      return yield* s.rungResults()
    })
  )
  if (!Exit.isSuccess(exit)) return t.fail(`store failed: ${JSON.stringify(exit.cause)}`)
  t.same(exit.value.map((r) => [r.rung, r.iterations, r.result.target, r.result.resumedFrom]), [[1, 100, 0.3, undefined], [2, 300, 0.4, 100]])
  const db = new Database(join(dir, DB_FILE), { readonly: true })
  t.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSION)
  t.same(db.prepare("SELECT rung, resumed_from FROM rung_results ORDER BY rung").all(), [{ rung: 1, resumed_from: null }, { rung: 2, resumed_from: 100 }])
  db.close()
})

t.test("a held-out training is stored once: a second result for the same cell is refused", async (t) => {
  const dir = tempDir(t)
  const result = { result: { metrics: { miou: 0.25 }, target: 0.25, invalid: false }, elapsedMs: 5 }
  const exit = await withStore(dir, (s) =>
    Effect.gen(function* () {
      yield* s.openRun({})
      yield* s.putHoldoutRun({ subject: "baseline", seed: 101, split: "held-out" }, null, result)
      yield* s.putHoldoutRun({ subject: "baseline", seed: 0, split: "proxy" }, null, result)
      t.equal((yield* s.holdoutRuns()).length, 2)
      yield* s.putHoldoutRun({ subject: "baseline", seed: 101, split: "held-out" }, null, result)
    })
  )
  t.match(Exit.isFailure(exit) && JSON.stringify(exit.cause), /"reason":"query".*UNIQUE/)
})

t.test("a version-5 selection gains the baseline columns when opened and reads as made without a key; a replay of it matches", async (t) => {
  const dir = tempDir(t)
  const old = await databaseAtVersion(dir, 5)
  const settings = { top: 1, seeds: [101], iterations: null }
  old.prepare("INSERT INTO selection (id, settings, metric, finalists, created_at) VALUES (1, ?, 'miou', ?, 0)")
    .run(stableJson(settings), JSON.stringify([{ id: 3, score: 0.4 }]))
  old.close()
  const plan = { settings, metric: "miou", seeds: [101], confirmSeeds: [], finalists: [{ id: 3, score: 0.4 }] }
  const exit = await withStore(dir, (s) =>
    Effect.gen(function* () {
      yield* s.openRun({})
      const before = yield* s.selection()
      yield* s.startSelection({ ...plan, baselineKey: null, setAside: [] })
      const replayedWithKey = yield* Effect.either(s.startSelection({ ...plan, baselineKey: "d:1", setAside: [{ id: 2, score: 0.5 }] }))
      return { before, replayedWithKey }
    })
  )
  if (!Exit.isSuccess(exit)) return t.fail(`store failed: ${JSON.stringify(exit.cause)}`)
  t.equal(exit.value.before?.baselineKey, null)
  t.same(exit.value.before?.setAside, [])
  t.match(JSON.stringify(exit.value.replayedWithKey), /"reason":"diverged".*set aside \[\{\\"id\\":2/, "another plan is refused, naming what it set aside")
})
