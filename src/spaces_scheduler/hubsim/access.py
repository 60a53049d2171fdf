"""Who is calling, and what the Hub lets them see and do.

The Hub's rules, as huggingface_hub's error mapping expects them:

- no token: 401 `Invalid username or password.`, with `X-Error-Code: RepoNotFound`
  on repository APIs (so the client raises RepositoryNotFoundError over http too);
  public repositories may still be read (info, refs, files) without a token;
- an unknown token: 401 `Invalid credentials in Authorization header` everywhere;
- a private repository the token may not see: 404 `RepoNotFound`, never 403;
- a repository the token may see but not manage (another owner, or a `read` token):
  403 with `X-Error-Message`;
- a `deny` path of the token: the anonymous 401, whatever the token could do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spaces_scheduler.hubsim.common import HubError

ANONYMOUS_MESSAGE = "Invalid username or password."
BAD_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
NOT_FOUND_MESSAGE = "Repository not found"
_REPO_PATH = re.compile(r"^/(api/(spaces|datasets|models)/[^/]+/[^/]+|.*/resolve/)")


@dataclass(frozen=True)
class Caller:
    """The token a request carried: `token` is its [[token]] table if known."""

    token: dict[str, Any] | None
    attached: bool

    @property
    def user(self) -> str | None:
        return None if self.token is None else str(self.token["user"])

    @property
    def role(self) -> str | None:
        return None if self.token is None else str(self.token["role"])

    def member_of(self, owner: str) -> bool:
        """Return whether `owner` is this token's user or one of its orgs."""
        if self.token is None:
            return False
        return owner == self.token["user"] or owner in self.token["orgs"]

    def denied(self, path: str) -> bool:
        """Return whether `path` is one of the token's `deny` patterns."""
        if self.token is None:
            return False
        return any(_deny_regex(p).fullmatch(path) for p in self.token["deny"])


def _deny_regex(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern).replace(r"\{id\}", r"[^/]+/[^/]+")
    return re.compile(re.sub(r"\\\{\w+\\\}", r"[^/]+", regex))


def identify(authorization: str | None, tokens: dict[str, dict[str, Any]]) -> Caller:
    """Return the caller an `Authorization` header names."""
    if not authorization:
        return Caller(token=None, attached=False)
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return Caller(token=None, attached=True)
    return Caller(token=tokens.get(value.strip()), attached=True)


def is_repo_path(path: str) -> bool:
    return _REPO_PATH.match(path) is not None


def anonymous_error(path: str) -> HubError:
    """Return the Hub's answer to a request without a (usable) token."""
    code = "RepoNotFound" if is_repo_path(path) else None
    return HubError(401, ANONYMOUS_MESSAGE, code=code)


def bad_token_error() -> HubError:
    return HubError(401, BAD_TOKEN_MESSAGE)


def not_found_error() -> HubError:
    return HubError(404, NOT_FOUND_MESSAGE, code="RepoNotFound")


def require_token(caller: Caller, path: str) -> None:
    """Refuse a request that carries no token (or an unknown one)."""
    if caller.token is None:
        raise bad_token_error() if caller.attached else anonymous_error(path)


def require_visible(
    caller: Caller, path: str, *, owner: str, private: bool, anonymous_ok: bool
) -> None:
    """Refuse a caller who may not see a repository (as if it did not exist)."""
    if caller.token is None and not (anonymous_ok and not private):
        raise anonymous_error(path)
    if private and not caller.member_of(owner):
        raise not_found_error()


def require_manage(caller: Caller, path: str, *, owner: str, repo_id: str) -> None:
    """Refuse a caller who may see a repository but not act on it."""
    require_token(caller, path)
    if not caller.member_of(owner):
        raise HubError(
            403,
            f"You don't have the rights to manage {repo_id}: it belongs to "
            f"{owner} and you are not a member of that namespace.",
        )
    if caller.role == "read":
        raise HubError(
            403,
            "This token has the read role; managing a repository needs a token "
            "with write access.",
        )


def require_namespace(
    caller: Caller, path: str, namespace: str, *, write: bool
) -> None:
    """Refuse a caller who may not use a namespace (jobs, scheduled jobs)."""
    require_token(caller, path)
    if not caller.member_of(namespace):
        raise HubError(403, f"You are not allowed to use the namespace {namespace}.")
    if write and caller.role == "read":
        raise HubError(403, "This token has the read role; this needs write access.")
