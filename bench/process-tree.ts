/**
 * A server is every process under the one the bench knows: `herald serve --workers N` is a primary and N workers
 * (node:cluster children), and the machine's memory and CPU are theirs together. RSS and CPU are summed over the
 * process and all its descendants, read from /proc (Linux).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readCpuSeconds, readRss, readRssParts } from './server-process.js';

/** The parent pid of `pid`, or undefined when it cannot be read (gone, not Linux). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

/** `pid` first, then its descendants (children, their children, ...); [] when `pid` is gone. */
export function processTree(pid: number): number[] {
  if (parentOf(pid) === undefined) return [];
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const child = Number(name);
    const parent = parentOf(child);
    if (parent === undefined) continue;
    const list = children.get(parent);
    if (list) list.push(child);
    else children.set(parent, [child]);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.shift()!;
    out.push(p);
    for (const c of children.get(p) ?? []) todo.push(c);
  }
  return out;
}

/** One process of a server tree and its resident set size. */
export interface ProcessRss {
  readonly pid: number;
  readonly rssBytes: number;
  /** The RSS split (Linux 4.5+): the process's own pages, and file pages shared through the page cache. */
  readonly anonBytes?: number;
  readonly fileBytes?: number;
}

/**
 * RSS of `pid` and each of its descendants, `pid` first; undefined when `pid` itself cannot be read (a partial sum
 * would mislead). A descendant that exits between the listing and the read is left out.
 */
export function treeRss(pid: number): ProcessRss[] | undefined {
  const root = readRss(pid);
  if (root === undefined) return undefined;
  const out: ProcessRss[] = [{ pid, rssBytes: root, ...readRssParts(pid) }];
  for (const p of processTree(pid).slice(1)) {
    const rss = readRss(p);
    if (rss !== undefined) out.push({ pid: p, rssBytes: rss, ...readRssParts(p) });
  }
  return out;
}

/**
 * The memory a server tree takes from the machine: each process's own (anonymous) pages summed, and the file pages
 * counted once (the largest process's), since every process maps the same node binary from the page cache. Summing
 * RSS counts those ~35-43 MB once per process. A lower bound of the union of file pages, close to it because the
 * processes run the same code. Undefined when a process's split cannot be read.
 */
export function machineMemory(processes: readonly ProcessRss[]): number | undefined {
  let anon = 0;
  let file = 0;
  for (const p of processes) {
    if (p.anonBytes === undefined || p.fileBytes === undefined) return undefined;
    anon += p.anonBytes;
    file = Math.max(file, p.fileBytes);
  }
  return processes.length === 0 ? undefined : anon + file;
}

/** CPU seconds of `pid` and its descendants now alive; undefined when `pid` itself cannot be read. */
export function treeCpuSeconds(pid: number): number | undefined {
  const root = readCpuSeconds(pid);
  if (root === undefined) return undefined;
  let sum = root;
  for (const p of processTree(pid).slice(1)) sum += readCpuSeconds(p) ?? 0;
  return sum;
}
