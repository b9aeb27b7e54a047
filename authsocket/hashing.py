"""SHA512-CRYPT password hashes (`{SHA512-CRYPT}$6$...`) via libxcrypt, without Python's `crypt`.

Python 3.13 (Debian 13) dropped the `crypt` module, so this calls libxcrypt's reentrant
`crypt_rn` through ctypes; `libcrypt.so.1` exists on Debian 12 and 13 alike. ctypes releases the
GIL during the call, so hashing in worker threads runs in parallel.
"""

from __future__ import annotations

import ctypes
import hmac
import secrets

SCHEME = "{SHA512-CRYPT}"
_SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SALT_LENGTH = 16
# sizeof(struct crypt_data) in libxcrypt; crypt_rn wants at least this much scratch space.
_CRYPT_DATA_SIZE = 32768

_lib = ctypes.CDLL("libcrypt.so.1", use_errno=True)
_crypt_rn = _lib.crypt_rn
_crypt_rn.restype = ctypes.c_char_p
_crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]


class HashError(ValueError):
    """The password or the setting cannot be hashed (NUL byte, malformed setting)."""


def crypt(password: bytes, setting: bytes) -> bytes:
    """crypt(3) of `password` with `setting` (a salt like `$6$...` or a whole hash)."""
    if b"\0" in password or b"\0" in setting:
        raise HashError("NUL byte in password or setting")
    scratch = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    result = _crypt_rn(password, setting, scratch, _CRYPT_DATA_SIZE)
    if not result or result.startswith(b"*"):
        raise HashError("crypt_rn refused the setting")
    return result


def hash_password(password: bytes) -> str:
    """A new `{SHA512-CRYPT}$6$<salt>$<hash>` for `password`, with a random 16-character salt."""
    salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(_SALT_LENGTH))
    return SCHEME + crypt(password, b"$6$" + salt.encode()).decode("ascii")


def verify_password(password: bytes, stored: str) -> bool:
    """Whether `password` matches a stored `{SHA512-CRYPT}` hash (constant-time compare)."""
    if not stored.startswith(SCHEME):
        return False
    expected = stored[len(SCHEME) :].encode("ascii", "replace")
    if not expected.startswith(b"$6$"):
        return False
    try:
        computed = crypt(password, expected)
    except HashError:
        return False
    return hmac.compare_digest(computed, expected)
