import type { TextSink } from '../io.js';
import { renderFields, renderTable } from './table.js';

/**
 * Output for one command: with `--json` a result is printed as JSON on stdout and nothing else;
 * otherwise the human rendering runs. Notes and warnings go to stderr so that stdout stays data.
 */
export class Printer {
  constructor(
    private readonly stdout: TextSink,
    private readonly stderr: TextSink,
    readonly json: boolean,
  ) {}

  get color(): boolean {
    return this.stdout.isTTY === true;
  }

  /** Prints `value` as JSON with `--json`, else calls `human`. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else human();
  }

  table(head: readonly string[], rows: readonly (readonly string[])[], empty = 'nothing to show'): void {
    if (rows.length === 0) this.note(empty);
    else this.line(renderTable(head, rows, this.color));
  }

  fields(fields: readonly (readonly [string, string])[]): void {
    this.line(renderFields(fields, this.color));
  }

  line(text: string): void {
    this.stdout.write(`${text}\n`);
  }

  note(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  warn(text: string): void {
    this.stderr.write(`warning: ${text}\n`);
  }
}
