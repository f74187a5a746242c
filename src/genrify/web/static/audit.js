"use strict";
// The audit page: fetch the dataset's audit, show each finding with players side by side, send accept / dismiss.

async function decide(item, key, decision) {
  const response = await fetch(`/api/audit/${encodeURIComponent(key)}`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({decision}),
  });
  const body = await response.json();
  if (!response.ok) return showError(body.error || "the decision was not saved");
  item.dataset.decision = body.decision;
}

function renderFinding(finding, index) {
  const item = el("li", {className: "audit-finding"});
  item.dataset.decision = finding.decision || "undecided";
  item.append(el("div", {className: "kind", textContent: finding.kind}),
              el("h2", {textContent: finding.title}),
              el("p", {className: "evidence", textContent: "Evidence: " + finding.evidence}),
              el("p", {className: "action", textContent: "Suggested: " + finding.action}));
  if (finding.tracks.length) {
    const tracks = el("div", {className: "tracks"});
    finding.tracks.forEach((track, j) => {
      const box = el("div", {className: "track" + (track.excluded ? " excluded" : "")});
      box.append(el("div", {className: "name", textContent: `${track.name} [${track.genre}]`}),
                 el("audio", {controls: true, preload: "none", src: `/api/audit/audio/${index}/${j}`}));
      tracks.append(box);
    });
    item.append(tracks);
  }
  if (finding.excluded) {
    const buttons = el("div", {className: "decide"});
    for (const decision of ["accept", "dismiss"]) {
      const button = el("button", {type: "button", textContent: decision === "accept" ? "Accept" : "Dismiss"});
      button.dataset.decision = decision;
      button.addEventListener("click", () => decide(item, finding.key, decision));
      buttons.append(button);
    }
    item.append(buttons);
  }
  return item;
}

async function load() {
  const response = await fetch("/api/audit");
  const body = await response.json();
  if (!response.ok) return showError(body.error || "the audit failed");
  const counts = Object.entries(body.counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ");
  document.getElementById("summary").textContent =
    `${body.dataset}: ${body.tracks} tracks, ${body.genres.length} genres — ${counts || "nothing found"}`;
  const list = document.getElementById("findings");
  body.findings.forEach((finding, i) => list.append(renderFinding(finding, i)));
}

load().catch((err) => showError(String(err)));
