"""The Alcove SDK for Python: end-to-end encrypted messages, homework and
documents between therapists and clients, through an Alcove relay that only
ever sees ciphertext.

Everything is re-exported from the generated bindings (``alcove.ffi``):
``create_profile``, ``open_profile``, ``AlcoveClient``, ``AlcoveError`` and
the records and enums they use. See docs/bindings.md.
"""

from .ffi import *  # noqa: F401,F403
