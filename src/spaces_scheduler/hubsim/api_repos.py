"""Repository endpoints: dataset and model info, refs, commits, file resolve."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from spaces_scheduler.hubsim.access import anonymous_error
from spaces_scheduler.hubsim.api_spaces import expand_of
from spaces_scheduler.hubsim.common import HubError
from spaces_scheduler.hubsim.repos import Commit, RepoState, etag_of
from spaces_scheduler.hubsim.wire import Request, Response, Route, json_response

if TYPE_CHECKING:
    from spaces_scheduler.hubsim.hub import Hub

Match = re.Match[str]
_KIND = {"datasets": "dataset", "models": "model", "spaces": "space"}


def _id(match: Match) -> str:
    return f"{match['owner']}/{match['name']}"


def _revision(repo: RepoState, revision: str) -> Commit:
    commit = repo.find_revision(unquote(revision))
    if commit is None:
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
    return commit


def info(hub: Hub, request: Request, match: Match) -> Response:
    kind = _KIND[match["dm"]]
    repo = hub.repo(request, kind, _id(match))
    commit = _revision(repo, match.groupdict().get("revision") or "main")
    return json_response(repo.info(commit, expand_of(request, kind)))


def refs(hub: Hub, request: Request, match: Match) -> Response:
    kind = _KIND[match["kinds"]]
    include_prs = request.param("include_prs") in ("1", "true", "True")
    if kind == "space":
        space = hub.space(request, _id(match), anonymous_ok=True)
        main = {"name": "main", "ref": "refs/heads/main", "targetCommit": space.sha}
        body = {"branches": [main], "converts": [], "tags": []}
        return json_response(body | ({"pullRequests": []} if include_prs else {}))
    repo = hub.repo(request, kind, _id(match))
    return json_response(repo.refs(include_prs=include_prs))


def commits(hub: Hub, request: Request, match: Match) -> Response:
    kind = _KIND[match["kinds"]]
    if kind == "space":
        raise HubError(400, "Commit listing is not simulated for Spaces.")
    repo = hub.repo(request, kind, _id(match))
    return json_response(repo.commit_list(_revision(repo, match["revision"])))


def auth_check(hub: Hub, request: Request, match: Match) -> Response:
    kind = _KIND[match["kinds"]]
    write = request.path.endswith("/write")
    if kind == "space":
        hub.space(request, _id(match), manage=write)
        return json_response({})

    repo = hub.repo(request, kind, _id(match))
    caller = request.who()
    if caller.token is None:
        raise anonymous_error(request.path)
    if write and (not caller.member_of(repo.owner) or caller.role == "read"):
        raise HubError(403, f"You cannot write to {repo.id} with this token.")
    return json_response({})


def resolve(hub: Hub, request: Request, match: Match) -> Response:
    prefix = match.groupdict().get("prefix")
    repo_kind = _KIND[prefix] if prefix else "model"
    filename = unquote(match["rest"])

    if repo_kind == "space":
        space = hub.space(request, _id(match), anonymous_ok=True)
        sha, files = space.sha, _space_files(space.id)
        if unquote(match["revision"]) not in ("main", sha):
            raise HubError(404, "Invalid rev id", code="RevisionNotFound")
    else:
        repo = hub.repo(request, repo_kind, _id(match))
        sha, files = _revision(repo, match["revision"]).sha, repo.files()

    content = files.get(filename)
    if content is None:
        raise HubError(404, "Entry not found", code="EntryNotFound")
    response = Response(status=200, body=content, content_type="text/plain")
    response.headers.update(
        {
            "X-Repo-Commit": sha,
            "ETag": f'"{etag_of(content)}"',
            "Accept-Ranges": "bytes",
        }
    )
    return response


def _space_files(space_id: str) -> dict[str, bytes]:
    return {
        "README.md": f"---\ntitle: {space_id}\nsdk: gradio\n---\n".encode(),
        "app.py": b"import gradio as gr\n",
    }


def routes() -> list[Route]:
    repo = "/api/{kinds}/{owner}/{name}"
    file = "/{owner}/{name}/resolve/{revision}/{rest}"
    return [
        Route("GET", f"{repo}/refs", refs),
        Route("GET", f"{repo}/commits/{{revision}}", commits),
        Route("GET", f"{repo}/auth-check", auth_check),
        Route("GET", f"{repo}/auth-check/write", auth_check),
        Route("GET", "/api/{dm}/{owner}/{name}", info),
        Route("GET", "/api/{dm}/{owner}/{name}/revision/{revision}", info),
        Route("GET", f"/{{prefix}}{file}", resolve),
        Route("GET", file, resolve),
    ]
