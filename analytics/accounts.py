"""Dashboard accounts: one personal account per employee, argon2-hashed passwords, a role each."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .clock import Clock, utcnow
from .store import Store

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD_LENGTH = 12
# A disabled account keeps its password hash behind this mark (as /etc/shadow does): it cannot log in, its
# sessions end (the credential changes), and enabling it again restores the password it had.
_DISABLED = "!"
# ... with a new generation after this mark (an argon2 hash has no space): the credential changes again, so
# the sessions disabling ended stay ended. (Found when tried as an attacker would: enabling an account
# brought back every session it had, a stolen one included.)
_GENERATION = " "


class Role(StrEnum):
    ADMIN = "admin"  # also handles data-subject requests and accounts
    MARKETER = "marketer"  # reads the dashboard


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    # Changes with the password: a session remembers it, so resetting a password ends old sessions.
    credential: str = field(default="", repr=False)
    disabled: bool = False


class NoAdminLeft(ValueError):
    """A change to the accounts that would leave the dashboard without an enabled admin (undone)."""


class Accounts:
    def __init__(self, store: Store, clock: Clock = utcnow, hasher: PasswordHasher | None = None) -> None:
        self._store = store
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        # Verified against when the user does not exist, so both paths cost one hash.
        self._decoy = self._hasher.hash("koekje-decoy-password")

    def add(self, username: str, password: str, role: Role = Role.MARKETER) -> Account:
        """Create the account, or reset its password and role when it exists."""
        username = validate_username(username)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = self._hasher.hash(password)
        self._write(username, password_hash, role, deleted=False)
        return _account(username, password_hash, role)

    def remove(self, username: str) -> bool:
        account = self.get(username)
        if account is None:
            return False
        self._write(account.username, "", account.role, deleted=True)
        return True

    def set_password(self, username: str, password: str) -> bool:
        """A new password for an existing account; its role stays, and so does its being disabled."""
        row = self._row(username)
        if row is None:
            return False
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        mark = _DISABLED if row[1].startswith(_DISABLED) else ""
        self._write(row[0], mark + self._hasher.hash(password), Role(row[2]), deleted=False)
        return True

    def set_role(self, username: str, role: Role) -> bool:
        row = self._row(username)
        if row is None:
            return False
        self._write(row[0], row[1], role, deleted=False)
        return True

    def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable an account (it cannot log in and its sessions end) or enable it again (with the password
        it had, and none of its old sessions)."""
        row = self._row(username)
        if row is None:
            return False
        if disabled:
            stored = _DISABLED + row[1].removeprefix(_DISABLED)
        else:
            stored = _password_hash(row[1]) + _GENERATION + secrets.token_hex(8)
        self._write(row[0], stored, Role(row[2]), deleted=False)
        return True

    def keeping_an_admin(self, username: str, change: Callable[[], bool]) -> bool:
        """Make ``change`` (to ``username``'s account: a role, disabling, removal) unless it leaves no
        enabled admin: then it is undone, and ValueError says why. Checked after the change, not before:
        found by trying, two admins demoting each other at the same moment both passed a check made first,
        and nobody could manage accounts any more. (Now both are undone.) False for no such account."""
        before = self._row(username)
        # (A store without an enabled admin to begin with, an old one, say: any change that adds none is no
        # worse; found by a review, the command line refused even a marketer's new password there.)
        had_one = before is not None and self._has_admin()
        if not change():
            return False
        if before is not None and had_one and not self._has_admin():
            self._write(before[0], before[1], Role(before[2]), deleted=False)
            raise NoAdminLeft("That would leave the dashboard without an admin.")
        return True

    def _has_admin(self) -> bool:
        return any(a.role == Role.ADMIN and not a.disabled for a in self.list())

    def get(self, username: str) -> Account | None:
        row = self._row(username)
        return None if row is None else _account(*row)

    def list(self) -> list[Account]:
        rows = self._store.query(
            f"SELECT username, password_hash, role FROM {self._store.table('dashboard_users')} FINAL "
            "WHERE deleted = 0 ORDER BY username"
        )
        return [_account(*row) for row in rows]

    def authenticate(self, username: str, password: str) -> Account | None:
        """The account when the password matches; None otherwise (in about the same time either way: a
        missing or disabled account is checked against a decoy hash)."""
        row = self._row(username) if _USERNAME.fullmatch(username) else None
        usable = row is not None and not row[1].startswith(_DISABLED)
        try:
            self._hasher.verify(
                _password_hash(row[1]) if row is not None and usable else self._decoy, password
            )
        except (VerificationError, InvalidHashError):
            return None
        return _account(*row) if row is not None and usable else None

    def _row(self, username: str) -> tuple[str, str, str] | None:
        rows = self._store.query(
            f"SELECT username, password_hash, role FROM {self._store.table('dashboard_users')} FINAL "
            "WHERE username = {username:String} AND deleted = 0",
            {"username": username},
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def _write(self, username: str, password_hash: str, role: Role, *, deleted: bool) -> None:
        self._store.insert_columns(
            "dashboard_users",
            {
                "username": [username],
                "password_hash": [password_hash],
                "role": [role.value],
                "updated": [self._clock()],
                "deleted": [int(deleted)],
            },
        )


def _password_hash(stored: str) -> str:
    """The argon2 hash in what an account stores (without the disabled mark and the generation)."""
    return stored.removeprefix(_DISABLED).partition(_GENERATION)[0]


def _account(username: str, password_hash: str, role: str) -> Account:
    credential = hashlib.sha256(password_hash.encode()).hexdigest()[:16]
    return Account(username, Role(role), credential, disabled=password_hash.startswith(_DISABLED))


def validate_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            f"invalid username {username!r}: use 1-64 lowercase letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return username
