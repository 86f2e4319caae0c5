/** Debian's Chromium for the browser tests (playwright-core drives it; CI installs the package). */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless, and as root in a container: no sandbox, nothing that reaches out to the network. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
