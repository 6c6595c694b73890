/**
 * Headless Chromium for the browser tests: Debian's `chromium` package driven by playwright-core (which never
 * downloads a browser of its own). The flags are the ones this machine kind documents: without the
 * background-networking ones, Chromium keeps trying to reach hosts the closed network refuses.
 * playwright's launch() gives each browser a new, empty profile directory and removes it on close.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env['HERALD_CHROMIUM'] ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    chromiumSandbox: false,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
