import { describe, expect, it } from 'vitest';

import { authenticatorName, ZERO_AAGUID } from '../../../runtime/webauthn/aaguids.js';

describe('authenticatorName', () => {
  it.each([
    ['ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4', 'Google Password Manager'],
    ['fbfc3007-154e-4ecc-8c0b-6e020557d7bd', 'iCloud Keychain'],
    ['08987058-cadc-4b81-b6e1-30de50dcbe96', 'Windows Hello'],
    ['adce0002-35bc-c60a-648b-0b25f1f05503', 'Chrome on Mac'],
    ['bada5566-a7aa-401f-bd96-45619a55120d', '1Password'],
    ['d548826e-79b4-db40-a3d8-11116f7e8349', 'Bitwarden'],
    ['531126d6-e717-415c-9320-3d9aa6981239', 'Dashlane'],
    ['53414d53-554e-4700-0000-000000000000', 'Samsung Pass'],
    ['d3452668-01fd-4c12-926c-83a4204853aa', 'Microsoft Password Manager'],
    ['cb69481e-8ff7-4039-93ec-0a2729a154a8', 'YubiKey 5 Series'],
    ['42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3', 'Google Titan Security Key v2'],
    ['833b721a-ff5f-4d00-bb2e-bdda3ec01e29', 'Feitian ePass FIDO2 Authenticator'],
  ])('%s is %s', (aaguid, name) => {
    expect(authenticatorName(aaguid)).toBe(name);
  });

  it('ignores case and surrounding space', () => {
    expect(authenticatorName(' FBFC3007-154E-4ECC-8C0B-6E020557D7BD ')).toBe('iCloud Keychain');
  });

  it('knows no name for the all-zero AAGUID or an unknown one', () => {
    expect(authenticatorName(ZERO_AAGUID)).toBeUndefined();
    expect(authenticatorName('12345678-1234-1234-1234-123456789abc')).toBeUndefined();
    expect(authenticatorName('not a uuid')).toBeUndefined();
  });
});
