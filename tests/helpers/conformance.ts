import { suite } from 'uvu'
import type { RegisterTest } from '../../src/testing/index.js'

/** Runs one of the dagstore/testing conformance suites as a uvu suite called `name`. */
export function runConformance (name: string, register: (test: RegisterTest) => void): void {
  const s = suite(name)
  register(s)
  s.run()
}
