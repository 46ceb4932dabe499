/**
 * Code generator for `autoloss export --format torch`: a loss graph becomes a standalone Python file
 * defining a `torch.nn.Module` (only `torch` is imported) whose `forward(**inputs)` returns
 * Σ_b weight_b · L_b with exactly the interpreter's semantics (python_workers/autoloss_worker/graph):
 * ε = 1e-12, sign(0) = 0 for log/sqrt, 3×3 pooling with stride 1 and padding that never wins, means
 * broadcast back, L_b = Σ o_b / (N·H·W), `one` shaped like the branch's first other input present.
 *
 * The generated code has one line per distinct subtree (identical subtrees are computed once, which
 * changes neither values nor gradients), named temporaries, and the subtree it computes as a comment.
 */
import { printLoss, printNode } from "./syntax.ts"
import type { OpName } from "./ops.ts"
import type { Branch, LossGraph, Node } from "./types.ts"

export interface TorchExportOptions {
  /** Python class name of the module. */
  readonly className: string
  /** Weight per branch name (e.g. det: 1.0 classification, 10.0 regression); missing ones are 1.0. */
  readonly weights?: Readonly<Record<string, number>>
}

export class TorchExportError extends Error {
  override readonly name = "TorchExportError"
}

const PY_KEYWORDS = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
  "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
  "pass", "raise", "return", "try", "while", "with", "yield"
])
/** Names the generated code itself uses at module or method scope. */
const RESERVED = new Set(["self", "torch", "F", "EPSILON", "inputs", "annotations"])
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const TEMPORARY = /^t[0-9]+$/

const checkIdentifier = (what: string, name: string): void => {
  if (!IDENTIFIER.test(name) || PY_KEYWORDS.has(name)) throw new TorchExportError(`${what} '${name}' is not a usable Python identifier`)
}

/** Helpers the generated file defines, only for the operators it uses (same code as the interpreter's ops.py). */
const HELPERS: Partial<Record<OpName, string>> = {
  inv: `def _inv(x: torch.Tensor) -> torch.Tensor:
    """1 / (x + ε)."""
    return torch.reciprocal(x + EPSILON)`,
  log: `def _log(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · log(|x| + ε): defined for negative x, and log(0) = 0."""
    return torch.sign(x) * torch.log(torch.abs(x) + EPSILON)`,
  sqrt: `def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · sqrt(|x| + ε): defined for negative x, and sqrt(0) = 0."""
    return torch.sign(x) * torch.sqrt(torch.abs(x) + EPSILON)`,
  mean_nhw: `def _mean_nhw(x: torch.Tensor) -> torch.Tensor:
    """Mean over N, H, W per channel, broadcast back: (1, C, 1, 1) -> (N, C, H, W)."""
    return x.mean(dim=(0, 2, 3), keepdim=True).expand_as(x)`,
  mean_c: `def _mean_c(x: torch.Tensor) -> torch.Tensor:
    """Mean over C, broadcast back: (N, 1, H, W) -> (N, C, H, W)."""
    return x.mean(dim=1, keepdim=True).expand_as(x)`,
  max_pool: `def _max_pool(x: torch.Tensor) -> torch.Tensor:
    """3×3 max pooling, stride 1, padding 1; max_pool2d pads with -inf, so padding never wins."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)`,
  min_pool: `def _min_pool(x: torch.Tensor) -> torch.Tensor:
    """3×3 min pooling, stride 1, padding 1 (as -max_pool(-x): the padding never wins)."""
    return -F.max_pool2d(-x, kernel_size=3, stride=1, padding=1)`
}

/** Python for one operator applied to already named operands. Exhaustive over `OpName`. */
const expression = (o: OpName, a: string, b: string | undefined): string => {
  switch (o) {
    case "add":
      return `${a} + ${b}`
    case "mul":
      return `${a} * ${b}`
    case "neg":
      return `-${a}`
    case "abs":
      return `torch.abs(${a})`
    case "exp":
      return `torch.exp(${a})`
    case "tanh":
      return `torch.tanh(${a})`
    case "square":
      return `torch.square(${a})`
    case "inv":
    case "log":
    case "sqrt":
    case "mean_nhw":
    case "mean_c":
    case "max_pool":
    case "min_pool":
      return `_${o}(${a})`
    default: {
      const unhandled: never = o
      throw new TorchExportError(`unknown operator '${String(unhandled)}'`)
    }
  }
}

const leavesOf = (n: Node, into: Set<string>): Set<string> => {
  if (n.type === "input") into.add(n.name)
  else for (const a of n.args) leavesOf(a, into)
  return into
}

const opsOf = (n: Node, into: Set<OpName>): Set<OpName> => {
  if (n.type === "op") {
    into.add(n.op)
    for (const a of n.args) opsOf(a, into)
  }
  return into
}

const COMMENT_WIDTH = 72
const INDENT = "        "

/** The body of `elementwise_<branch>`: one assignment per distinct subtree, post-order. */
const branchBody = (root: Node): string[] => {
  const lines: string[] = []
  const names = new Map<string, string>()
  const visit = (n: Node): string => {
    if (n.type === "input") return n.name
    const text = printNode(n)
    const known = names.get(text)
    if (known !== undefined) return known
    const [a, b] = n.args.map(visit)
    const name = `t${names.size + 1}`
    names.set(text, name)
    const code = `${INDENT}${name} = ${expression(n.op, a!, b)}`
    lines.push(text.length <= COMMENT_WIDTH ? `${code}  # ${text}` : code)
    return name
  }
  const out = visit(root)
  lines.push(`${INDENT}return ${out}`)
  return lines
}

const pyNumber = (v: number): string => {
  if (!Number.isFinite(v)) throw new TorchExportError(`weight ${v} is not finite`)
  const s = String(v)
  return /[.eE]/.test(s) ? s : `${s}.0`
}

const pyTuple = (items: ReadonlyArray<string>): string => `(${items.map((s) => `"${s}"`).join(", ")}${items.length === 1 ? "," : ""})`

const branchMethod = (b: Branch): string[] => {
  const used = leavesOf(b.root, new Set())
  const params = b.kind.inputs.filter((name) => used.has(name))
  return [
    `    def elementwise_${b.name}(self, ${params.map((p) => `${p}: torch.Tensor`).join(", ")}) -> torch.Tensor:`,
    `        """${b.name}: ${printNode(b.root)}`,
    ``,
    `        (N, C, H, W) inputs -> (N, C, H, W) output; the branch value is its sum / (N·H·W).`,
    `        """`,
    ...branchBody(b.root)
  ]
}

/** The standalone Python source (ends with a newline). */
export const exportTorchModule = (g: LossGraph, options: TorchExportOptions): string => {
  checkIdentifier("class name", options.className)
  if (g.branches.length === 0) throw new TorchExportError("a loss needs at least one branch")
  const weights = options.weights ?? {}
  for (const name of Object.keys(weights)) {
    if (!g.branches.some((b) => b.name === name)) throw new TorchExportError(`weight given for unknown branch '${name}'`)
  }
  for (const b of g.branches) {
    checkIdentifier("branch name", b.name)
    for (const name of b.kind.inputs) {
      checkIdentifier(`input of branch '${b.name}'`, name)
      if (RESERVED.has(name) || TEMPORARY.test(name)) throw new TorchExportError(`input '${name}' of branch '${b.name}' clashes with a name the generated code uses`)
    }
  }
  const formula = printLoss(g)
  const used = new Set<OpName>()
  for (const b of g.branches) opsOf(b.root, used)
  const helpers = (Object.keys(HELPERS) as OpName[]).filter((o) => used.has(o)).map((o) => HELPERS[o]!)
  const weightOf = (name: string): number => weights[name] ?? 1
  const sumText = g.branches.map((b) => `${pyNumber(weightOf(b.name))}·L_${b.name}`).join(" + ")
  const exampleInputs = (g.branches[0]!.kind.inputs.filter((n) => n !== "one")).map((n) => `${n}=...`).join(", ")

  const lines = [
    `"""${options.className}: a loss function found by AutoLoss-Zero search, as a standalone PyTorch module.`,
    ``,
    `Loss (one branch per line):`,
    ...g.branches.map((b) => `    ${b.name}: ${printNode(b.root)}`),
    ``,
    `Value: L = ${sumText},`,
    `where L_b = Σ o_b / (N·H·W) sums branch b's elementwise output o_b over N, C, H, W and normalises`,
    `by N·H·W only (not by C). Every input is an (N, C, H, W) tensor; \`one\` is a tensor of ones`,
    `shaped like the branch's first other input. Operators: inv(x) = 1/(x + ε),`,
    `log(x) = sign(x)·log(|x| + ε), sqrt(x) = sign(x)·sqrt(|x| + ε) with ε = 1e-12 and sign(0) = 0;`,
    `means are taken over N, H, W (per channel) or over C and broadcast back; pools are 3×3, stride 1,`,
    `padding 1, and the padding never wins.`,
    ``,
    `    criterion = ${options.className}()`,
    `    loss = criterion(${exampleInputs})  # a scalar tensor, differentiable`,
    ``,
    `Generated by autoloss (AutoLoss-Zero, Li et al., CVPR 2022); needs only torch.`,
    `"""`,
    ``,
    `from __future__ import annotations`,
    ``,
    `from typing import Mapping`,
    ``,
    `import torch`,
    ...(used.has("max_pool") || used.has("min_pool") ? [`import torch.nn.functional as F`] : []),
    ``,
    `EPSILON = 1e-12`,
    ``,
    ...helpers.flatMap((h) => [``, h, ``]),
    ``,
    `def _branch_inputs(branch: str, names: tuple[str, ...], used: tuple[str, ...], inputs: Mapping[str, object]) -> dict[str, torch.Tensor]:`,
    `    """The tensors branch \`branch\` reads: its own dict under its name first, then shared keywords."""`,
    `    own = inputs.get(branch)`,
    `    own = own if isinstance(own, Mapping) else {}`,
    `    env = {}`,
    `    for name in names:`,
    `        value = own.get(name, inputs.get(name))`,
    `        if isinstance(value, torch.Tensor):`,
    `            env[name] = value`,
    `    if "one" not in env:`,
    `        reference = next((env[n] for n in names if n != "one" and n in env), None)`,
    `        if reference is None:`,
    `            raise ValueError(f"branch '{branch}': no input to shape 'one' like (want one of {[n for n in names if n != 'one']})")`,
    `        env["one"] = torch.ones_like(reference)`,
    `    shape = None`,
    `    for name in used:`,
    `        if name not in env:`,
    `            raise ValueError(f"branch '{branch}': input '{name}' was not provided")`,
    `        t = env[name]`,
    `        if t.dim() != 4:`,
    `            raise ValueError(f"branch '{branch}': input '{name}' must be (N, C, H, W), got {tuple(t.shape)}")`,
    `        # No broadcasting between inputs: + and * would silently broadcast.`,
    `        if shape is None:`,
    `            shape = t.shape`,
    `        elif t.shape != shape:`,
    `            raise ValueError(f"branch '{branch}': input '{name}' has shape {tuple(t.shape)}, expected {tuple(shape)}")`,
    `    return {name: env[name] for name in used}`,
    ``,
    ``,
    `class ${options.className}(torch.nn.Module):`,
    `    """${formula.length <= 80 ? formula : `Loss with branches ${g.branches.map((b) => b.name).join(", ")}`} (see the module docstring)."""`,
    ``,
    `    BRANCHES = ${pyTuple(g.branches.map((b) => b.name))}`,
    `    # Inputs each branch's kind declares, and those its formula reads (in that order).`,
    `    INPUTS = {${g.branches.map((b) => `"${b.name}": ${pyTuple(b.kind.inputs)}`).join(", ")}}`,
    `    USED = {${g.branches.map((b) => { const u = leavesOf(b.root, new Set()); return `"${b.name}": ${pyTuple(b.kind.inputs.filter((n) => u.has(n)))}` }).join(", ")}}`,
    `    DEFAULT_WEIGHTS = {${g.branches.map((b) => `"${b.name}": ${pyNumber(weightOf(b.name))}`).join(", ")}}`,
    ``,
    `    def __init__(self, weights: Mapping[str, float] | None = None) -> None:`,
    `        super().__init__()`,
    `        unknown = set(weights or {}) - set(self.BRANCHES)`,
    `        if unknown:`,
    `            raise ValueError(f"weights for unknown branches {sorted(unknown)}; branches are {self.BRANCHES}")`,
    `        self.weights = {**self.DEFAULT_WEIGHTS, **(weights or {})}`,
    ``,
    `    def forward(self, **inputs: object) -> torch.Tensor:`,
    `        """Σ_b weight_b · L_b. A keyword is either an input tensor, shared by every branch that reads`,
    `        it, or a branch name mapped to a dict of that branch's own input tensors (which win)."""`,
    `        values = self.branch_values(**inputs)`,
    `        return sum(self.weights[name] * values[name] for name in self.BRANCHES)`,
    ``,
    `    def branch_values(self, **inputs: object) -> dict[str, torch.Tensor]:`,
    `        """L_b = Σ o_b / (N·H·W) for every branch b (unweighted)."""`,
    `        values = {}`,
    `        for name in self.BRANCHES:`,
    `            env = _branch_inputs(name, self.INPUTS[name], self.USED[name], inputs)`,
    `            out = getattr(self, f"elementwise_{name}")(**env)  # (N, C, H, W)`,
    `            n, _, h, w = out.shape`,
    `            values[name] = out.sum() / (n * h * w)`,
    `        return values`,
    ...g.branches.flatMap((b) => [``, ...branchMethod(b)])
  ]
  return lines.join("\n") + "\n"
}
