"""The audit page (``genrify serve --audit my.gdb``): each finding of the dataset's audit with its
tracks' players side by side, and accept / dismiss.

An accepted finding's suggested exclusions go to the dataset's exclusion list (the one
``genrify audit --apply`` writes and ``train`` / ``evaluate`` respect); a dismissed one's do
not. Decisions are kept in ``<dataset>/audit-decisions.json``, so they survive a restart.
The page serves only files the audit names, by index, and never shows where they live.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.errors import NotFoundError
from genrify.web.audio_response import audio_response
from genrify.web.origins import check_same_origin
from genrify.web.settings import static_dir

router = APIRouter()
DECISIONS = "audit-decisions.json"


def finding_key(finding: dict) -> str:
    """A finding's identity across audits: its kind and its tracks."""
    text = finding["kind"] + "\n" + "\n".join(sorted(t["path"] for t in finding["tracks"])) + "\n" + finding["title"]
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class AuditPage:
    """The audit of one dataset, computed once (on first use), and the decisions taken on it."""

    def __init__(self, dataset: str | Path):
        self.dataset = Path(dataset)
        self._result: dict | None = None
        self._lock = threading.Lock()

    def result(self) -> dict:
        from genrify.audit import audit_dataset

        with self._lock:
            if self._result is None:
                self._result = audit_dataset(self.dataset)
            return self._result

    def decisions(self) -> dict[str, str]:
        path = self.dataset / DECISIONS
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return {}

    def decide(self, key: str, decision: str) -> dict[str, str]:
        """Record ``decision`` for the finding ``key``; rewrite the exclusion list from the accepted findings."""
        from genrify.dataset.exclusions import write_exclusions
        from genrify.fileio import write_text_atomic

        findings = {finding_key(f): f for f in self.result()["findings"]}
        if key not in findings:
            raise NotFoundError("no such finding in this audit")
        with self._lock:
            decisions = self.decisions()
            decisions[key] = decision
            write_text_atomic(self.dataset / DECISIONS, json.dumps(decisions, indent=1))
            excluded = {p: f"{f['kind']}: {f['title']}" for k, f in findings.items()
                        if decisions.get(k) == "accept" for p in f["exclude"]}
            write_exclusions(self.dataset, excluded, note="written by the audit page (accepted findings)")
        return decisions

    def track_file(self, index: int, track: int) -> Path:
        findings = self.result()["findings"]
        if not 0 <= index < len(findings) or not 0 <= track < len(findings[index]["tracks"]):
            raise NotFoundError("no such track in this audit")
        return Path(findings[index]["tracks"][track]["path"])


def get_page(request: Request) -> AuditPage:
    return request.app.state.audit_page


Page = Annotated[AuditPage, Depends(get_page)]


def same_origin(request: Request) -> None:
    check_same_origin(request, allowed=request.app.state.settings.cors_origins)


def register(app, dataset: str | Path) -> None:
    """Serve the audit of ``dataset`` at ``/audit`` (page) and ``/api/audit`` on ``app``."""
    from genrify.dataset.store import Dataset

    Dataset(dataset).close()  # a wrong path fails now, in one line, not on the first request
    app.state.audit_page = AuditPage(dataset)
    app.include_router(router)


@router.get("/audit", include_in_schema=False)
async def audit_html() -> FileResponse:
    return FileResponse(static_dir() / "audit.html", media_type="text/html")


@router.get("/api/audit", tags=["audit"], summary="The dataset's audit: findings, counts and decisions")
async def audit_json(page: Page) -> dict:
    result = await run_in_threadpool(page.result)
    decisions = page.decisions()
    findings = [{"key": finding_key(f), "kind": f["kind"], "title": f["title"], "evidence": f["evidence"],
                 "action": f["action"], "excluded": len(f["exclude"]), "decision": decisions.get(finding_key(f)),
                 "tracks": [{"name": Path(t["path"]).name, "genre": t["genre"], "artist": t["artist"],
                             "excluded": t["path"] in f["exclude"]} for t in f["tracks"]]}
                for f in result["findings"]]
    return {"dataset": Path(result["dataset"]).name, "tracks": result["tracks"], "genres": result["genres"],
            "counts": result["counts"], "findings": findings}


@router.get("/api/audit/audio/{index}/{track}", tags=["audit"],
            summary="A track of a finding, to listen to (Range supported)")
async def audit_audio(request: Request, index: int, track: int, page: Page) -> Response:
    """Only a track the audit names (by finding and position), still a regular file: else 404."""
    path = await run_in_threadpool(page.track_file, index, track)
    # A dataset names no library folder: a track is served from its own folder, never through a link out of it.
    return await audio_response(path, roots=(path.parent,), request=request)


@router.post("/api/audit/{key}", tags=["audit"], summary="Accept or dismiss a finding",
             dependencies=[Depends(same_origin)])
async def audit_decide(key: str, page: Page,
                       decision: Annotated[str, Body(embed=True, pattern="^(accept|dismiss|undecided)$")]) -> dict:
    decisions = await run_in_threadpool(page.decide, key, decision)
    return {"key": key, "decision": decisions[key]}
