// Numbered steps with their timings: what `cluster:up` and `image:build` print as they go.

export type Progress = (line: string) => void;

/** Runs the numbered steps, printing one line per step with how long it took. */
export class Steps {
  private n = 0;
  constructor(
    private readonly total: number,
    private readonly out: Progress,
  ) {}

  async step<T>(title: string, fn: (note: Progress) => Promise<T>): Promise<T> {
    const prefix = `[${++this.n}/${this.total}]`;
    const started = Date.now();
    this.out(`${prefix} ${title}`);
    const result = await fn((line) => this.out(`${prefix}   ${line}`));
    this.out(`${prefix} ${title}: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return result;
  }
}
