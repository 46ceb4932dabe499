/**
 * LaTeX for loss graphs, for reports: `neg(mul(y, log(y_hat)))` → `-y \cdot \log\left(\hat{y}\right)`.
 * Parentheses appear only where precedence needs them (or where a power or minus would read
 * ambiguously). Operators follow the paper's table; log and sqrt are the sign-preserving variants
 * there, written plainly.
 */
import type { LossGraph, Node } from "./types.ts"
import { DEFAULT_BRANCH_NAME } from "./syntax.ts"

/** Binding strength of a rendered term: sums bind loosest, atoms tightest. */
const Prec = { Sum: 1, Negation: 2, Product: 3, Atom: 4 } as const
type Prec = (typeof Prec)[keyof typeof Prec]

interface Tex {
  readonly tex: string
  readonly prec: Prec
}

const INPUT_TEX: Readonly<Record<string, string>> = { y_hat: "\\hat{y}", y: "y", one: "1", i: "i", u: "u", e: "e" }

const escapeText = (s: string): string => s.replace(/_/g, "\\_")

const paren = (tex: string): string => `\\left(${tex}\\right)`
const wrapBelow = (t: Tex, prec: Prec): string => (t.prec < prec ? paren(t.tex) : t.tex)
const call = (fn: string, arg: Tex): Tex => ({ tex: `${fn}${paren(arg.tex)}`, prec: Prec.Atom })

const render = (n: Node): Tex => {
  if (n.type === "input") return { tex: INPUT_TEX[n.name] ?? `\\mathrm{${escapeText(n.name)}}`, prec: Prec.Atom }
  const args = n.args.map(render)
  const [a, b] = args as [Tex, Tex | undefined]
  switch (n.op) {
    case "add":
      // Sums are associative, so a + b + c needs none; a + (-b) keeps them so "+ -" never appears.
      return { tex: `${a.tex} + ${(b as Tex).prec === Prec.Negation ? paren((b as Tex).tex) : (b as Tex).tex}`, prec: Prec.Sum }
    case "mul":
      return { tex: `${wrapBelow(a, Prec.Product)} \\cdot ${wrapBelow(b as Tex, Prec.Product)}`, prec: Prec.Product }
    case "neg":
      return { tex: `-${wrapBelow(a, Prec.Product)}`, prec: Prec.Negation }
    case "abs":
      return { tex: `\\left|${a.tex}\\right|`, prec: Prec.Atom }
    case "inv":
      return { tex: `\\frac{1}{${a.tex} + \\epsilon}`, prec: Prec.Atom }
    case "log":
      return call("\\log", a)
    case "exp":
      return call("\\exp", a)
    case "tanh":
      return call("\\tanh", a)
    case "square": {
      // Only leaves, |x| and √x take a superscript unbracketed; f(x)^2 or x̄^{NHW}^2 would be ambiguous.
      const bare = n.args[0]?.type === "input" || n.args[0]?.type === "op" && (n.args[0].op === "abs" || n.args[0].op === "sqrt")
      return { tex: `${bare ? a.tex : paren(a.tex)}^{2}`, prec: Prec.Atom }
    }
    case "sqrt":
      return { tex: `\\sqrt{${a.tex}}`, prec: Prec.Atom }
    case "mean_nhw":
      return call("\\operatorname{mean}_{NHW}", a)
    case "mean_c":
      return call("\\operatorname{mean}_{C}", a)
    case "max_pool":
      return call("\\operatorname{maxpool}", a)
    case "min_pool":
      return call("\\operatorname{minpool}", a)
    default: {
      const unknown: never = n.op
      throw new Error(`no LaTeX for operator '${String(unknown)}'`)
    }
  }
}

export const nodeToLatex = (n: Node): string => render(n).tex

/** One branch: its expression. Several: `L_{name} = expr` per branch, joined by `,\quad `. */
export const toLatex = (g: LossGraph): string => {
  const [only] = g.branches
  if (g.branches.length === 1 && only !== undefined && only.name === DEFAULT_BRANCH_NAME) return nodeToLatex(only.root)
  return g.branches.map((b) => `L_{\\mathrm{${escapeText(b.name)}}} = ${nodeToLatex(b.root)}`).join(",\\quad ")
}
