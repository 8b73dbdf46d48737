/**
 * Whether a host names this machine only: what decides if the admin API may go without a
 * token (serve --no-auth, startServer with token null) and which Host headers it then answers.
 * The server and the CLI must agree, so both ask this one function.
 */
import { BlockList, isIP } from 'node:net'

// BlockList compares addresses, not spellings: ::1 written out in full, and IPv4-mapped IPv6
// (::ffff:127.0.0.1, ::ffff:7f00:1), match the rules below.
const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** 127.0.0.0/8, ::1 (bare or in brackets, as in a URL or a Host header), IPv4-mapped loopback, or the name localhost. */
export function isLoopback (host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (h.toLowerCase() === 'localhost') return true
  const family = isIP(h)
  if (family === 0) return false
  return LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6')
}
