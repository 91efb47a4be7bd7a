import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { openBackend } from '../../src/repo/backends/open.js';
import type { Backend } from '../../src/repo/backends/backend.js';
import { backendContract } from '../support/backend-contract.js';
import { startRcloneServe, type StorageServer } from '../support/storage-servers.js';

const servers: Array<StorageServer & { env: Record<string, string> }> = [];
const opened: Backend[] = [];
before(async () => {
  servers.push(await startRcloneServe(undefined, 'webdav', 'davtest'), await startRcloneServe(undefined, 'sftp', 'sftptest'));
});
after(async () => {
  for (const b of opened) await b.close?.();
  for (const s of servers) await s.stop();
});

function rclone(remote: string, server: () => StorageServer & { env: Record<string, string> }) {
  return async () => {
    const backend = openBackend(`rclone:${remote}:${randomBytes(6).toString('hex')}`, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...server().env } });
    opened.push(backend);
    return backend;
  };
}

backendContract('rclone webdav', rclone('davtest', () => servers[0]!));
backendContract('rclone sftp', rclone('sftptest', () => servers[1]!));
