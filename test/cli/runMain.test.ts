import t from "tap"
import { execa } from "execa"
import { fileURLToPath } from "node:url"

const fixture = fileURLToPath(new URL("../workers/fixtures/poolMain.ts", import.meta.url))
const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch { return false }
}

t.test("SIGTERM to the control plane stops its workers before it exits", async (t) => {
  // forceKillAfterDelay: false: execa would SIGKILL 5 s after our SIGTERM, which under load cuts the graceful
  // shutdown this test is about; the test waits for the exit instead
  const child = execa(process.execPath, ["--import", "tsx", fixture], { reject: false, stdout: "pipe", stderr: "pipe", forceKillAfterDelay: false })
  const workerPid = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      const m = /ready (\d+)/.exec(chunk.toString())
      if (m) resolve(Number(m[1]))
    })
    void child.then((r) => reject(new Error(`exited early: ${r.stderr}`)))
  })
  t.ok(alive(workerPid), "the worker runs")
  child.kill("SIGTERM")
  const done = await child
  t.equal(done.exitCode, 128 + 15)
  t.notOk(alive(workerPid), "no orphan worker")
  t.match(done.stderr, /SIGTERM, shutting down workers/)
})
