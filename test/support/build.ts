import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Builds dist/ when it is missing or older than a source file (`npx tsc -p tsconfig.build.json`),
 * for tests that run what production runs. Returns the path of `file` under dist/.
 */
export function builtFile(file: string): string {
  const sources = execFileSync('git', ['ls-files', 'src'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const builtAt = fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0;
  if (sources.some((f) => fs.existsSync(f) && fs.statSync(f).mtimeMs > builtAt))
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  return file;
}
