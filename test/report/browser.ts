/**
 * Debian's chromium driven by playwright-core, for the report's browser tests. Never downloads a
 * browser: without /usr/bin/chromium (scripts/install-chromium.sh) the tests that need it skip.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium, type BrowserContext } from "playwright-core"

export const CHROMIUM = process.env["AUTOLOSS_CHROMIUM"] ?? "/usr/bin/chromium"

export const hasChromium = (): boolean => existsSync(CHROMIUM)

/** A headless, offline-minded chromium with a throwaway profile; `close` removes the profile too. */
export const launchChromium = async (): Promise<{ context: BrowserContext; close: () => Promise<void> }> => {
  const profile = mkdtempSync(join(tmpdir(), "autoloss-chromium-"))
  // The fresh profile is passed as the persistent context's user-data-dir (Playwright's way of
  // giving chromium --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"
    ],
    viewport: { width: 1400, height: 1000 }
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}
