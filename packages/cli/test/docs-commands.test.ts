/**
 * The docs promise only what the CLI does: every `flotilla …` command line in README.md and
 * docs/*.md code blocks parses with the real command-line parser (commands, options, argument
 * validators; no action runs), and every `--flag` named in inline code exists on its command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { buildProgram } from '../src/program.js';
import { memoryIo } from './helpers/memory-io.js';

// This file runs from packages/cli/test (tsx) or packages/cli/dist/test (compiled).
const up = import.meta.url.endsWith('.ts') ? '../../..' : '../../../..';
const repoRoot = fileURLToPath(new URL(`${up}/`, import.meta.url));

function documents(): { name: string; text: string }[] {
  const docs = readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs].map((name) => ({ name, text: readFileSync(join(repoRoot, name), 'utf8') }));
}

/** Lines of fenced code blocks, with `\` continuations joined. */
function codeLines(markdown: string): string[] {
  const lines: string[] = [];
  let inBlock = false;
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (/^\s*```/.test(raw)) {
      inBlock = !inBlock;
      pending = '';
      continue;
    }
    if (!inBlock) continue;
    const line = pending + raw.trim();
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    pending = '';
    lines.push(line.replace(/^\$ /, ''));
  }
  return lines;
}

/** Shell-like words: quotes removed, `#` comments dropped; stops at redirections and separators. */
function words(text: string): string[] {
  const out: string[] = [];
  let word = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (quote) {
      if (c === quote) quote = null;
      else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      has = true;
      continue;
    }
    if (/\s/.test(c)) {
      if (has || word) out.push(word);
      word = '';
      has = false;
      continue;
    }
    if (c === '#' && !has && word === '') break;
    if ((c === '<' || c === '>') && !has && (word === '' || /^\d$/.test(word))) break;
    word += c;
  }
  if (has || word) out.push(word);
  return out;
}

/** The `flotilla` invocations in one line: each `$(…)` on its own, pipes and `&&` split. */
function invocations(line: string): string[][] {
  const found: string[][] = [];
  let text = line;
  for (let start = text.lastIndexOf('$('); start >= 0; start = text.lastIndexOf('$(')) {
    const end = text.indexOf(')', start);
    if (end < 0) break;
    found.push(...invocations(text.slice(start + 2, end)));
    text = `${text.slice(0, start)}SUBST${text.slice(end + 1)}`;
  }
  for (const segment of text.split(/\|\||&&|\||;|&(?!\S)/)) {
    const w = words(segment.trim());
    while (w.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(w[0] ?? '')) w.shift();
    if (w[0] === 'flotilla') found.push(w.slice(1));
  }
  return found;
}

/** A fresh program whose actions do nothing, so that parsing is all that happens. */
function parserOnly(): Command {
  const program = buildProgram(memoryIo());
  const silence = (cmd: Command) => {
    // Leaves, and commands that act themselves as well as holding subcommands (`agent`).
    const acts = (cmd as unknown as { _actionHandler: unknown })._actionHandler !== null;
    if (cmd.commands.length === 0 || acts) cmd.action(() => undefined);
    cmd.commands.forEach(silence);
  };
  program.commands.forEach(silence);
  return program;
}

async function parses(argv: string[]): Promise<string | null> {
  if (argv.length === 1 && argv[0] === '--version') return null;
  try {
    await parserOnly().parseAsync(argv, { from: 'user' });
    return null;
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return null;
    return error instanceof Error ? error.message : String(error);
  }
}

void test('every flotilla command line in README.md and docs/*.md parses with the real CLI parser', async () => {
  const failures: string[] = [];
  let checked = 0;
  for (const doc of documents()) {
    for (const line of codeLines(doc.text)) {
      for (const argv of invocations(line)) {
        checked += 1;
        const problem = await parses(argv);
        if (problem) failures.push(`${doc.name}: flotilla ${argv.join(' ')}\n    ${problem}`);
      }
    }
  }
  assert.ok(checked > 50, `only ${checked} command lines found`);
  assert.deepEqual(failures, []);
});

/** The command an inline `flotilla a b …` names, and the options it and its parents accept. */
function optionsOf(program: Command, argv: string[]): { path: string; flags: Set<string> } {
  let cmd = program;
  const path: string[] = [];
  for (const w of argv) {
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) break;
    cmd = sub;
    path.push(w);
  }
  const flags = new Set<string>(['--help', '-h', '--version']);
  for (let c: Command | null = cmd; c; c = c.parent) {
    for (const o of c.options) {
      if (o.long) {
        flags.add(o.long);
        if (o.negate) flags.add(o.long);
      }
      if (o.short) flags.add(o.short);
    }
  }
  return { path: path.join(' '), flags };
}

void test('every --flag a doc names in inline code exists on that command', () => {
  const program = buildProgram(memoryIo());
  const failures: string[] = [];
  for (const doc of documents()) {
    const outsideBlocks = doc.text.split(/```[\s\S]*?```/g).join('\n');
    for (const m of outsideBlocks.matchAll(/`flotilla ([^`]+)`/g)) {
      const text = (m[1] ?? '').split(' -- ')[0] ?? '';
      const argv = text.split(/\s+/);
      const { path, flags } = optionsOf(program, argv);
      for (const token of argv) {
        for (const flag of token.match(/--[a-z][a-z0-9-]*/g) ?? []) {
          if (!flags.has(flag))
            failures.push(`${doc.name}: \`flotilla ${m[1] ?? ''}\`: ${path || '(top)'} has no ${flag}`);
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});

/** Flags of other programs the docs quote alone (zstd's, ostree's). */
const OTHER_PROGRAMS_FLAGS = new Set([
  '--patch-from',
  '--fsync',
  // Node's own (docs/agent-lifecycle.md "Footprint")
  '--expose-gc',
  '--max-semi-space-size',
  '--max-old-space-size',
  '--jitless',
  '--lite-mode',
  '--optimize-for-size',
  '--single-threaded-gc',
  '--v8-pool-size',
  '--max-lazy',
  '--no-opt',
  '--opt',
  '--no-sparkplug',
]);

void test('every --flag the docs mention in inline code is an option of some flotilla command', () => {
  const program = buildProgram(memoryIo());
  const all = new Set<string>(['--help', '--version']);
  const collect = (cmd: Command) => {
    for (const o of cmd.options) if (o.long) all.add(o.long);
    cmd.commands.forEach(collect);
  };
  collect(program);
  const failures: string[] = [];
  for (const doc of documents()) {
    const outsideBlocks = doc.text.split(/```[\s\S]*?```/g).join('\n');
    for (const m of outsideBlocks.matchAll(/`([^`\n]+)`/g)) {
      const code = m[1] ?? '';
      // Other programs' flags (npm, node, ostree, zstd, …) are not the CLI's.
      if (/^(npm|node|ostree|zstd|git|docker|curl|sqlite3|tar|rsync|systemctl|createdb|sync)\b/.test(code))
        continue;
      for (const flag of code.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []) {
        if (!all.has(flag) && !OTHER_PROGRAMS_FLAGS.has(flag))
          failures.push(`${doc.name}: ${flag} (in \`${code}\`)`);
      }
    }
  }
  assert.deepEqual([...new Set(failures)], []);
});

void test('the web dashboard is documented where it is offered: server --help, docs/web.md', () => {
  const server = buildProgram(memoryIo()).commands.find((c) => c.name() === 'server');
  assert.ok(server, 'a server command');
  assert.match(server.helpInformation(), /--no-dashboard/);
  const docs = documents();
  const web = docs.find((d) => d.name.endsWith('web.md'));
  assert.ok(web, 'docs/web.md exists');
  // Every doc that speaks of the dashboard points at its documentation (or is it).
  const unexplained = docs
    .filter((d) => /dashboard/i.test(d.text) && d !== web && !/web\.md/.test(d.text))
    .map((d) => d.name);
  assert.deepEqual(unexplained, []);
});
