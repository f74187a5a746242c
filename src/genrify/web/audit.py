"""The audit page (``genrify serve --audit my.gdb``): each finding of the dataset's audit with its
tracks' players side by side, and accept / relabel / dismiss.

An accepted finding's suggested exclusions go to the dataset's exclusion list (the one
``genrify audit --apply`` writes and ``train`` / ``evaluate`` respect); a relabelled mislabel
goes to the same file's relabels (train and evaluate read the track under its new genre); a
dismissed one changes nothing. The user's audio files and their tags are never written.
Decisions are kept in ``<dataset>/audit-decisions.json``, so they survive a restart.
The page reuses the audit ``genrify audit`` stored while it is current
(:func:`genrify.audit.core.current_audit`) and says why when it recomputes.
Without ``--audit`` the page says how to start it. It serves only files the audit
names, by index, and never shows where they live.
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

from genrify.errors import ConfigError, NotFoundError
from genrify.web.audio_response import audio_response
from genrify.web.origins import check_same_origin
from genrify.web.settings import static_dir

router = APIRouter()
DECISIONS = "audit-decisions.json"
#: What /api/audit answers when the server was started without a dataset to audit.
NOT_STARTED = "no dataset to audit: start the server with 'genrify serve --audit my.gdb'"


def finding_key(finding: dict) -> str:
    """A finding's identity across audits: its kind and its tracks."""
    text = finding["kind"] + "\n" + "\n".join(sorted(t["path"] for t in finding["tracks"])) + "\n" + finding["title"]
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class AuditPage:
    """The audit of one dataset, the stored one while current, else computed once (on first use),
    and the decisions taken on it."""

    def __init__(self, dataset: str | Path):
        from genrify.audit import stored_audit

        self.dataset = Path(dataset)
        self._lock = threading.Lock()
        # Checked now, cheaply (a digest of the index, no audio decoded), so that 'serve' can say at
        # start whether the page will be instant or has to recompute, and why.
        self._result, self.stale = stored_audit(self.dataset)

    @property
    def origin(self) -> str:
        """One line on where the page's audit comes from."""
        if self.stale is None:
            return f"audit: reusing the stored audit of {self.dataset}"
        return f"audit: computing the audit of {self.dataset} on first visit ({self.stale})"

    def result(self) -> dict:
        from genrify.audit import current_audit

        with self._lock:
            if self._result is None:
                self._result, _ = current_audit(self.dataset)
            return self._result

    def decisions(self) -> dict[str, str]:
        path = self.dataset / DECISIONS
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return {}

    def decide(self, key: str, decision: str) -> dict[str, str]:
        """Record ``decision`` for the finding ``key``; rewrite the exclusion list (exclusions of the
        accepted findings, relabels of the relabelled ones)."""
        from genrify.dataset.exclusions import write_exclusions
        from genrify.fileio import write_text_atomic

        findings = {finding_key(f): f for f in self.result()["findings"]}
        if key not in findings:
            raise NotFoundError("no such finding in this audit")
        if decision == "relabel" and not findings[key].get("relabel"):
            raise ConfigError("this finding suggests no other genre: accept or dismiss it")
        with self._lock:
            decisions = self.decisions()
            decisions[key] = decision
            write_text_atomic(self.dataset / DECISIONS, json.dumps(decisions, indent=1))
            excluded = {p: f"{f['kind']}: {f['title']}" for k, f in findings.items()
                        if decisions.get(k) == "accept" for p in f["exclude"]}
            relabelled = {p: g for k, f in findings.items() if decisions.get(k) == "relabel"
                          for p, g in (f.get("relabel") or {}).items()}
            write_exclusions(self.dataset, excluded, relabelled=relabelled,
                             note="written by the audit page (accepted and relabelled findings)")
        return decisions

    def track_file(self, index: int, track: int) -> Path:
        findings = self.result()["findings"]
        if not 0 <= index < len(findings) or not 0 <= track < len(findings[index]["tracks"]):
            raise NotFoundError("no such track in this audit")
        return Path(findings[index]["tracks"][track]["path"])


def get_page(request: Request) -> AuditPage:
    page = getattr(request.app.state, "audit_page", None)
    if page is None:
        err = NotFoundError(NOT_STARTED)
        err.details = {"start": "genrify serve --audit my.gdb"}  # type: ignore[attr-defined]
        raise err
    return page


Page = Annotated[AuditPage, Depends(get_page)]


def same_origin(request: Request) -> None:
    check_same_origin(request, allowed=request.app.state.settings.cors_origins)


def register(app, dataset: str | Path | None) -> None:
    """Serve the audit of ``dataset`` at ``/audit`` (page) and ``/api/audit`` on ``app``; without a
    dataset the page says how to start one."""
    if dataset is not None:
        from genrify.dataset.store import Dataset

        Dataset(dataset).close()  # a wrong path fails now, in one line, not on the first request
        app.state.audit_page = AuditPage(dataset)
    # Without a dataset only the page saying how to start one answers: its API is not offered in /openapi.json.
    app.include_router(router, include_in_schema=dataset is not None)


@router.get("/audit", include_in_schema=False)
async def audit_html() -> FileResponse:
    return FileResponse(static_dir() / "audit.html", media_type="text/html")


@router.get("/api/audit", tags=["audit"], summary="The dataset's audit: findings, counts and decisions")
async def audit_json(page: Page) -> dict:
    result = await run_in_threadpool(page.result)
    decisions = page.decisions()
    findings = [{"key": finding_key(f), "kind": f["kind"], "title": f["title"], "evidence": f["evidence"],
                 "action": f["action"], "excluded": len(f["exclude"]), "decision": decisions.get(finding_key(f)),
                 "relabel": sorted(set((f.get("relabel") or {}).values())),
                 "tracks": [{"name": Path(t["path"]).name, "genre": t["genre"], "artist": t["artist"],
                             "excluded": t["path"] in f["exclude"]} for t in f["tracks"]]}
                for f in result["findings"]]
    return {"dataset": Path(result["dataset"]).name, "tracks": result["tracks"], "genres": result["genres"],
            "counts": result["counts"], "findings": findings, "reused": page.stale is None}


@router.get("/api/audit/label-pairs.png", tags=["audit"],
            summary="The suspicious label pairs of the audit, as a picture (the report's label-pairs.png)")
async def audit_label_pairs(page: Page) -> Response:
    from genrify.report import label_pairs_png

    result = await run_in_threadpool(page.result)
    png = await run_in_threadpool(label_pairs_png, result["pairs"], title="Suspicious label pairs")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/api/audit/audio/{index}/{track}", tags=["audit"],
            summary="A track of a finding, to listen to (Range supported)")
async def audit_audio(request: Request, index: int, track: int, page: Page) -> Response:
    """Only a track the audit names (by finding and position), still a regular file: else 404."""
    path = await run_in_threadpool(page.track_file, index, track)
    # A dataset names no library folder: a track is served from its own folder, never through a link out of it.
    return await audio_response(path, roots=(path.parent,), request=request)


@router.post("/api/audit/{key}", tags=["audit"], summary="Accept, relabel or dismiss a finding",
             dependencies=[Depends(same_origin)])
async def audit_decide(key: str, page: Page,
                       decision: Annotated[str, Body(embed=True, pattern="^(accept|relabel|dismiss|undecided)$")]) -> dict:
    decisions = await run_in_threadpool(page.decide, key, decision)
    return {"key": key, "decision": decisions[key]}
