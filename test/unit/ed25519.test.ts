import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { test } from 'node:test';
import { ed25519PublicKey, ed25519Response } from '../../src/sources/mariadb/ed25519.js';

test("client_ed25519: the public key is the one MariaDB stores for the password, and the signature verifies with Node's Ed25519", () => {
  // What MariaDB 10.11 stored for IDENTIFIED VIA ed25519 USING PASSWORD('s3cret pw') (mysql.user.authentication_string).
  assert.equal(ed25519PublicKey('s3cret pw').toString('base64').replace(/=+$/, ''), 'geBKIlEvpQD1gtKZkEY5Woqa8zfoYDEkILcHEQdPlQo');
  const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), ed25519PublicKey('s3cret pw')]), format: 'der', type: 'spki' });
  for (const nonce of [Buffer.alloc(32), Buffer.alloc(32, 0xff), Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddee00', 'hex')]) {
    const signature = ed25519Response('s3cret pw', nonce);
    assert.equal(signature.length, 64);
    assert.ok(verify(null, nonce, key, signature));
    assert.ok(!verify(null, Buffer.alloc(32, 1), key, signature), 'a signature of another nonce does not verify');
  }
});
