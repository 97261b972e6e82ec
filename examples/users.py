"""Users: registration, renaming, and password changes that never reuse an earlier password.

Passwords are never stored: events hold salted PBKDF2 hashes. Where does the history live so that
`decide` can check a new password against it? In the aggregate's own state, which keeps every hash
the user has had: the rule is then decided in the same place, against the same version, as the
change it guards. A document projection keeps a readable history per user (names and the times the
password was set, never a hash).

    python -m examples.users [STORE] [--schema NAME]
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

import attrs

from eventsourcing_fn import Aggregate, DocumentProjection, EventStore, Recorded

from ._story import storage_from, told

# Far below the 600 000 PBKDF2-SHA256 iterations OWASP asks for, so the example runs at once:
# raise it in production. Each hash records its count, so earlier hashes stay verifiable.
ITERATIONS = 20_000
MIN_LENGTH = 8
_USERNAME = re.compile(r"[\w.-]{1,32}", re.ASCII)


def new_salt() -> str:
    """16 random bytes, as hex."""
    return secrets.token_hex(16)


@attrs.frozen
class PasswordHash:
    """A salted PBKDF2-SHA256 hash of a password; the password itself is never kept."""

    salt: str = attrs.field(repr=False)
    digest: str = attrs.field(repr=False)
    iterations: int = ITERATIONS

    def matches(self, password: str) -> bool:
        """Whether `password` is the one hashed here (in constant time)."""
        again = hash_password(password, self.salt, self.iterations)
        return hmac.compare_digest(again.digest, self.digest)


def hash_password(password: str, salt: str, iterations: int = ITERATIONS) -> PasswordHash:
    """The hash of `password` with `salt` (hex)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), iterations)
    return PasswordHash(salt, digest.hex(), iterations)


# -- events, commands, state -----------------------------------------------------------------


@attrs.frozen
class Registered:
    username: str
    password: PasswordHash


@attrs.frozen
class UserRenamed:
    old_username: str
    username: str


@attrs.frozen
class PasswordChanged:
    password: PasswordHash


# A command carries the plain password (commands are never stored, and repr hides it) and the
# salt to hash it with: drawn when the command is made, so `decide` stays a pure function.
@attrs.frozen
class Register:
    username: str
    password: str = attrs.field(repr=False)
    salt: str = attrs.field(factory=new_salt, repr=False)


@attrs.frozen
class Rename:
    username: str


@attrs.frozen
class ChangePassword:
    current: str = attrs.field(repr=False)
    new: str = attrs.field(repr=False)
    salt: str = attrs.field(factory=new_salt, repr=False)


@attrs.frozen
class User:
    username: str | None = None
    passwords: tuple[PasswordHash, ...] = ()  # every password the user has had, the current last


class AlreadyRegistered(Exception):
    """The user exists already."""


class NotRegistered(Exception):
    """No such user."""


class InvalidUsername(Exception):
    """A username must be 1 to 32 letters, digits, '-', '_' or '.'."""


class WeakPassword(Exception):
    """The password is too short."""


class WrongPassword(Exception):
    """The current password given does not match."""


class PasswordReused(Exception):
    """The new password is one the user had before."""


# -- the aggregate ---------------------------------------------------------------------------

users = Aggregate("user", initial=User())


@users.evolve
def registered(state: User, event: Registered) -> User:
    return User(event.username, (event.password,))


@users.evolve
def renamed(state: User, event: UserRenamed) -> User:
    return attrs.evolve(state, username=event.username)


@users.evolve
def password_changed(state: User, event: PasswordChanged) -> User:
    return attrs.evolve(state, passwords=(*state.passwords, event.password))


@users.decide
def register(command: Register, state: User) -> Registered:
    if state.username is not None:
        raise AlreadyRegistered(state.username)
    _check_username(command.username)
    _check_strength(command.password)
    return Registered(command.username, hash_password(command.password, command.salt))


@users.decide
def rename(command: Rename, state: User) -> list[UserRenamed]:
    current = _existing(state)
    _check_username(command.username)
    return [] if command.username == current else [UserRenamed(current, command.username)]


@users.decide
def change_password(command: ChangePassword, state: User) -> PasswordChanged:
    _existing(state)
    if not state.passwords[-1].matches(command.current):
        raise WrongPassword()
    _check_strength(command.new)
    if any(earlier.matches(command.new) for earlier in state.passwords):
        raise PasswordReused("choose a password you have never used here")
    return PasswordChanged(hash_password(command.new, command.salt))


def _existing(state: User) -> str:
    if state.username is None:
        raise NotRegistered()
    return state.username


def _check_username(name: str) -> None:
    if not _USERNAME.fullmatch(name):
        raise InvalidUsername(repr(name))


def _check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"at least {MIN_LENGTH} characters, got {len(password)}")


# -- a readable history ----------------------------------------------------------------------


@attrs.frozen
class PasswordHistory:
    """A user's current name and when each of their passwords was set."""

    username: str
    set_at: tuple[datetime, ...] = ()


password_history = DocumentProjection("password_history", doc_type=PasswordHistory)


@password_history.on
def history_starts(
    doc: PasswordHistory | None, event: Registered, record: Recorded[Registered]
) -> PasswordHistory:
    return PasswordHistory(event.username, (record.recorded_at,))


@password_history.on
def history_renamed(doc: PasswordHistory | None, event: UserRenamed) -> PasswordHistory | None:
    return None if doc is None else attrs.evolve(doc, username=event.username)


@password_history.on
def history_grows(
    doc: PasswordHistory | None, event: PasswordChanged, record: Recorded[PasswordChanged]
) -> PasswordHistory | None:
    return None if doc is None else attrs.evolve(doc, set_at=(*doc.set_at, record.recorded_at))


# -- the story -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Register a user, rename them, change their password, and try to reuse an old one."""
    with (
        storage_from(argv, "users", "Users whose passwords are never reused.") as storage,
        EventStore(storage, aggregates=[users], projections=[password_history]) as store,
    ):
        ann = store.execute(users, None, Register("ann", "correct horse")).unwrap().stream_id
        print(f"{'register ann':<36} -> Registered (user {ann[:8]})")
        steps: list[tuple[str, object]] = [
            ("rename ann to annie", Rename("annie")),
            ("change the password", ChangePassword("correct horse", "battery staple")),
            ("change it back to the first one", ChangePassword("battery staple", "correct horse")),
            ("change it, wrong current password", ChangePassword("tr0ub4dor&3", "a new one!")),
            ("change it to a short one", ChangePassword("battery staple", "short")),
            ("change it to a new one", ChangePassword("battery staple", "purple monkey")),
        ]
        for what, command in steps:
            print(f"{what:<36} -> {told(store.execute(users, ann, command))}")
        user = store.load(users, ann)
        name, hashes = user.state.username, len(user.state.passwords)
        print(f"state at version {user.version}: {name}, {hashes} password hashes kept")
        stored = " ".join(row.data for row in storage.read_stream(users.name, ann, 0, None))
        plain = [p for p in ("correct horse", "battery staple", "purple monkey") if p in stored]
        print(f"plain passwords in the stored events: {plain or 'none'}")
        history = store.documents(password_history)[ann]
        times = ", ".join(f"{at:%H:%M:%S}" for at in history.set_at)
        print(f"password history of {history.username}: set {len(history.set_at)} times ({times})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
