// Evaluates config/argocd/health.lua the way Argo CD does, with a real Lua interpreter (lua5.4)
// in a sandbox shaped like Argo CD's gopher-lua VM: only the base, table and (safe) os libraries,
// no string library and no string methods, and the resource as the global `obj`.
// Used by the packaging tests, and by hand:
//   kubectl get wanmigration x -o json | node hack/argo-health.ts
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { healthLuaPath } from './packaging.ts';

export const LUA = 'lua5.4';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A Lua expression for a JSON value; null becomes nil, as Argo CD's conversion does. */
export function luaLiteral(v: Json): string {
  if (v === null) return 'nil';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`not representable in JSON: ${v}`);
    return String(v);
  }
  if (typeof v === 'string') return luaString(v);
  if (Array.isArray(v)) return `{${v.map(luaLiteral).join(', ')}}`;
  return `{${Object.entries(v).map(([k, x]) => `[${luaString(k)}] = ${luaLiteral(x)}`).join(', ')}}`;
}

function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += '\\\\';
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${String(byte).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

/**
 * Lua source that runs the script file given as arg[1] with `obj` bound and prints
 * "<status>\n<message>". The string metatable is removed before the script runs, so
 * `s:find(...)`-style calls fail here exactly as they would in Argo CD.
 */
export function harness(obj: Json): string {
  return `
local path = arg[1]
local f = assert(io.open(path, "r"))
local src = f:read("a")
f:close()
local env = {
  obj = ${luaLiteral(obj)},
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  print = print, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  getmetatable = getmetatable, setmetatable = setmetatable, tonumber = tonumber,
  tostring = tostring, type = type, unpack = table.unpack, xpcall = xpcall, _VERSION = _VERSION,
  table = table, os = { time = os.time, date = os.date, clock = os.clock },
}
local chunk = assert(load(src, "=health.lua", "t", env))
local write, exit, stderr = io.write, os.exit, io.stderr
debug.setmetatable("", nil)
local ok, hs = pcall(chunk)
if not ok then stderr:write("lua error: " .. tostring(hs) .. "\\n") exit(3) end
if type(hs) ~= "table" or type(hs.status) ~= "string" or type(hs.message) ~= "string" then
  stderr:write("health script must return {status=string, message=string}\\n") exit(4)
end
write(hs.status, "\\n", hs.message)
`;
}

export interface Health { status: string; message: string }

export interface LuaRun { status: number; stdout: string; stderr: string }

/** Runs a health script on `obj`; throws naming the Debian package when lua5.4 is missing. */
export function runHealthScript(obj: Json, scriptPath: string = healthLuaPath): LuaRun {
  const r = spawnSync(LUA, ['-', scriptPath], { input: harness(obj), encoding: 'utf8' });
  if (r.error) {
    throw new Error(`${LUA} could not be run (${r.error.message}): install the Debian package lua5.4 (hack/setup.sh does)`);
  }
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Argo CD's health of `obj` according to config/argocd/health.lua. */
export function argoHealth(obj: Json, scriptPath: string = healthLuaPath): Health {
  const r = runHealthScript(obj, scriptPath);
  if (r.status !== 0) throw new Error(`health.lua failed (exit ${r.status}) for ${JSON.stringify(obj)}: ${r.stderr}`);
  const nl = r.stdout.indexOf('\n');
  return { status: r.stdout.slice(0, nl), message: r.stdout.slice(nl + 1) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const h = argoHealth(JSON.parse(readFileSync(0, 'utf8')) as Json);
  console.log(`${h.status}: ${h.message}`);
}
