import fs from 'node:fs';
import os from 'node:os';

/** A machine as worker records name it: its host name, and its boot id where the system has one (Linux). */
export interface HostIdentity {
  name: string;
  bootId: string | undefined;
}

/**
 * This machine. The boot id tells a process of this boot from one of an earlier boot with the same pid:
 * a worker recorded under another boot id is certainly gone.
 */
export function thisHost(): HostIdentity {
  let bootId: string | undefined;
  try {
    bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { name: os.hostname(), bootId };
}
