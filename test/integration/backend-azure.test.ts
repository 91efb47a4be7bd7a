import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { openBackend } from '../../src/repo/backends/open.js';
import { backendContract } from '../support/backend-contract.js';
import { azuriteConnectionString, startAzurite, type StorageServer } from '../support/storage-servers.js';

let azurite: StorageServer;
before(async () => {
  azurite = await startAzurite();
});
after(() => azurite.stop());

backendContract('azure (Azurite)', async () =>
  openBackend(`azure://c${randomBytes(6).toString('hex')}/repo`, { env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(azurite.url) } }),
);
