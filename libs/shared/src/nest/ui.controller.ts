import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Controller, Get, Param, Res, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { KernelError } from '../errno';
import { Auth } from './auth';

/** The page's own files (libs/shared/ui/), found from the repository root whether running from src or dist. */
function uiDir(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'nest-cli.json'))) return join(dir, 'libs', 'shared', 'ui');
  }
  throw new Error(`no nest-cli.json above ${__dirname}`);
}

/** What /ui serves, by name: the page, its script and style, and Mermaid from node_modules (never a CDN). */
const FILES: Record<string, () => string> = {
  'ui.js': () => join(uiDir(), 'ui.js'),
  'ui.css': () => join(uiDir(), 'ui.css'),
  'mermaid.min.js': () => require.resolve('mermaid/dist/mermaid.min.js'),
};

/**
 * The operator's page: recent traces drawn as sequence diagrams, the live object graph, PASID history. The page
 * holds no data: it reads the audit plane with the audit token the operator gives it (kept in sessionStorage).
 */
@ApiExcludeController()
@Auth('none')
@Controller({ path: 'ui', version: VERSION_NEUTRAL })
export class UiController {
  @Get()
  page(@Res() res: Response): void {
    res.setHeader('cache-control', 'no-store');
    res.sendFile(join(uiDir(), 'index.html'));
  }

  @Get(':file')
  file(@Param('file') name: string, @Res() res: Response): void {
    const path = Object.prototype.hasOwnProperty.call(FILES, name) ? FILES[name]() : null;
    if (!path) throw new KernelError('ENOENT', `no file ${name} in /ui`);
    res.setHeader('cache-control', name === 'mermaid.min.js' ? 'max-age=3600' : 'no-store');
    res.sendFile(path);
  }
}
