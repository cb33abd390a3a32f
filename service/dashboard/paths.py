"""Where the dashboard lives; the guard needs to know its two HTML forms (service/body.py lets their bodies in)."""

from __future__ import annotations

PREFIX = "/dashboard"
SIGN_IN = f"{PREFIX}/login"
SIGN_OUT = f"{PREFIX}/logout"
STATIC = f"{PREFIX}/static"
# The only paths that take `application/x-www-form-urlencoded` (sign in, sign out); everything else is JSON.
FORM_PATHS = frozenset({SIGN_IN, SIGN_OUT})
