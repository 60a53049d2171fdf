"""Datasets and models: a commit history, a README, and the info the Hub shows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from spaces_scheduler.hubsim.common import fake_sha, iso_z, new_sha, object_id

# Keys `expand=` may ask for, per kind (huggingface_hub's Expand*Property_T).
EXPAND_KEYS = {
    "dataset": frozenset(
        "author cardData citation createdAt description disabled downloads "
        "downloadsAllTime gated lastModified likes mainSize paperswithcode_id "
        "private resourceGroup sha siblings tags trendingScore usedStorage".split()
    ),
    "model": frozenset(
        "author baseModels cardData childrenModelCount config createdAt disabled "
        "downloads downloadsAllTime evalResults gated gguf inference "
        "inferenceProviderMapping lastModified library_name likes mask_token "
        "model-index pipeline_tag private resourceGroup safetensors sha siblings "
        "spaces tags transformersInfo trendingScore usedStorage widgetData".split()
    ),
    "space": frozenset(
        "author cardData createdAt datasets disabled lastModified likes models "
        "private region resourceGroup runtime sdk sha siblings subdomain tags "
        "trendingScore usedStorage".split()
    ),
}


@dataclass
class Commit:
    """One commit on `main`."""

    sha: str
    time: float
    title: str


@dataclass
class RepoState:
    """A dataset or model: its commits (newest last) and files."""

    kind: str
    id: str
    private: bool
    readme: bool
    commits: list[Commit] = field(default_factory=list)
    created: float = 0.0

    @classmethod
    def from_settings(
        cls, kind: str, settings: dict[str, Any], *, now: float
    ) -> RepoState:
        sha = settings["sha"] or fake_sha(kind, settings["id"])
        first = Commit(sha=sha, time=now - 86400, title="Upload dataset")
        return cls(
            kind=kind,
            id=settings["id"],
            private=settings["private"],
            readme=settings["readme"],
            commits=[first],
            created=now - 86400 * 30,
        )

    @property
    def owner(self) -> str:
        return self.id.split("/")[0]

    @property
    def sha(self) -> str:
        return self.commits[-1].sha

    def commit(self, *, now: float, title: str = "Update data") -> tuple[str, str]:
        """Add a commit on `main`; return (old sha, new sha)."""
        old = self.sha
        self.commits.append(Commit(sha=new_sha(), time=now, title=title))
        return old, self.sha

    def find_revision(self, revision: str) -> Commit | None:
        """Return the commit `revision` names (main, a full or short sha), if any."""
        if revision in ("main", "refs/heads/main"):
            return self.commits[-1]
        for commit in reversed(self.commits):
            if len(revision) >= 7 and commit.sha.startswith(revision):
                return commit
        return None

    def files(self) -> dict[str, bytes]:
        """Return the files of the repo (the same at every revision)."""
        files = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
        if self.readme:
            files["README.md"] = f"# {self.id}\n\nA simulated {self.kind}.\n".encode()
        return files

    def info(self, commit: Commit, expand: list[str] | None) -> dict[str, Any]:
        """Return the `/api/{kind}s/{id}` body; only `expand`ed keys if given."""
        full: dict[str, Any] = {
            "_id": object_id(self.kind, self.id),
            "id": self.id,
            "author": self.owner,
            "sha": commit.sha,
            "lastModified": iso_z(commit.time),
            "createdAt": iso_z(self.created),
            "private": self.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": name} for name in self.files()],
        }
        return select_expanded(full, expand)

    def refs(self, *, include_prs: bool) -> dict[str, Any]:
        """Return the `/refs` body: `main` only, no tags, converts or PRs."""
        main = {"name": "main", "ref": "refs/heads/main", "targetCommit": self.sha}
        body: dict[str, Any] = {"branches": [main], "converts": [], "tags": []}
        if include_prs:
            body["pullRequests"] = []
        return body

    def commit_list(self, commit: Commit) -> list[dict[str, Any]]:
        """Return the `/commits/{rev}` body, newest first, from `commit` down."""
        index = self.commits.index(commit)
        return [
            {
                "id": c.sha,
                "title": c.title,
                "message": "",
                "date": iso_z(c.time),
                "authors": [{"user": self.owner}],
            }
            for c in reversed(self.commits[: index + 1])
        ]


def select_expanded(full: dict[str, Any], expand: list[str] | None) -> dict[str, Any]:
    """Keep `_id`, `id` and the expanded keys, as the Hub does with `expand=`."""
    if not expand:
        return full
    return {k: v for k, v in full.items() if k in ("_id", "id") or k in expand}


def etag_of(content: bytes) -> str:
    """Return the git blob id of `content`, the Hub's ETag for small files."""
    header = f"blob {len(content)}\0".encode()
    return hashlib.sha1(header + content).hexdigest()
