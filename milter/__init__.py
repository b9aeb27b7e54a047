"""The encryption-checking milter Postfix consults for every message."""
