// What the machine must have before the local cluster can start: root, Debian packages, Go.
import fs from 'node:fs';
import { debianPackages } from './versions.js';
import { run, succeeds } from './proc.js';

export class PrerequisiteError extends Error {}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new PrerequisiteError(
      'the local cluster runs containerd, CNI bridges and mounts, which need root: run this command as root (for example with sudo -E)',
    );
  }
}

async function missingPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const pkg of debianPackages) {
    const ok = await succeeds('sh', [
      '-c',
      `dpkg-query -W -f='\${Status}' ${pkg} | grep -q 'install ok installed'`,
    ]);
    if (!ok) missing.push(pkg);
  }
  return missing;
}

/** Installs the Debian packages that are missing (apt-get, as root); explains what to do when it cannot. */
export async function ensureDebianPackages(log: (line: string) => void): Promise<void> {
  if (!fs.existsSync('/etc/debian_version')) {
    throw new PrerequisiteError('the local cluster expects Debian 12 (apt-get and its package names)');
  }
  const missing = await missingPackages();
  if (missing.length === 0) return;
  log(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
  try {
    await install();
  } catch {
    // A fresh machine may have no package lists yet.
    try {
      await run('apt-get', ['update'], { env });
      await install();
    } catch (e) {
      throw new PrerequisiteError(
        `could not install Debian packages (${missing.join(' ')}): ${(e as Error).message}\n` +
          `install them yourself: apt-get install -y ${missing.join(' ')}`,
      );
    }
  }
}

export async function requireGo(): Promise<void> {
  if (!(await succeeds('go', ['version']))) {
    throw new PrerequisiteError(
      'Go is needed once to build kube-apiserver, etcd, containerd and helm from their modules: install Go >= 1.24 and put it on PATH',
    );
  }
}
