/** `herald bench`: placeholder until the load generator lands (issue 2, item 9). */
export async function benchCommand(_argv: string[]): Promise<number> {
  process.stderr.write('herald bench: not built yet\n');
  return 1;
}
