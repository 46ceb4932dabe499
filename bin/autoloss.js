#!/usr/bin/env node
// Entry point for `npx autoloss <verb>`: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from "tsx/esm/api"
register()
await import("../src/cli/main.ts")
