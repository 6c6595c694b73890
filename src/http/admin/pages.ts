/**
 * The dashboard's files: plain HTML, CSS and one small script in this folder, no build step. They are read from
 * the source folder (src/http/admin/, shipped in the npm package beside dist/) once, at first use, and kept.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const FILES = ['index.html', 'login.html', 'admin.js', 'admin.css'] as const;
type AdminFile = (typeof FILES)[number];

/** dist/src/http/admin/pages.js → src/http/admin/; or this folder itself where the files sit beside the code. */
function folder(): string {
  const here = fileURLToPath(new URL('./', import.meta.url));
  if (existsSync(here + 'index.html')) return here;
  return fileURLToPath(new URL('../../../../src/http/admin/', import.meta.url));
}

let cache: Map<AdminFile, Buffer> | undefined;

export function staticFile(name: AdminFile): Buffer {
  if (!cache) {
    const dir = folder();
    cache = new Map(FILES.map((f) => [f, readFileSync(dir + f)]));
  }
  return cache.get(name)!;
}

export function adminPage(): Buffer {
  return staticFile('index.html');
}

/** The login form; `problem` is one of the server's fixed messages, never request input. */
export function loginPage(problem: string | undefined): string {
  const html = staticFile('login.html').toString('utf8');
  return html.replace('<!--problem-->', problem === undefined ? '' : `<p class="problem" role="alert">${escapeHtml(problem)}</p>`);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
