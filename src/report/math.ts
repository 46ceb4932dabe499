/**
 * Formulas for the report, rendered server-side with KaTeX (`renderToString`), so the page needs no
 * script for them. `katexStyle()` is KaTeX's stylesheet with every font inlined as a woff2 data URI:
 * the report opens offline and from a single file.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import katex from "katex"

/** Display-mode HTML for `tex`; a formula KaTeX cannot parse comes back as a `.katex-error` span. */
export const renderMath = (tex: string): string =>
  katex.renderToString(tex, { displayMode: true, throwOnError: false, output: "html", strict: "ignore" })

let cachedStyle: string | undefined

/**
 * KaTeX's CSS, each `@font-face` source list replaced by its woff2 file as a data URI (every
 * browser that runs this report reads woff2; the woff/ttf fallbacks would only add weight).
 */
export const katexStyle = (): string => {
  if (cachedStyle !== undefined) return cachedStyle
  const dist = dirname(createRequire(import.meta.url).resolve("katex/dist/katex.min.css"))
  const css = readFileSync(join(dist, "katex.min.css"), "utf8")
  cachedStyle = css.replace(/src:url\((fonts\/[^)]+\.woff2)\) format\("woff2"\)[^;}]*/g, (_m, file: string) => {
    const data = readFileSync(join(dist, file)).toString("base64")
    return `src:url(data:font/woff2;base64,${data}) format("woff2")`
  })
  if (/url\(fonts\//.test(cachedStyle)) throw new Error("katexStyle: a KaTeX font reference was not inlined")
  return cachedStyle
}
