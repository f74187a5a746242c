"use strict";
// The audit page: fetch the dataset's audit, show each finding with players side by side, and send
// accept / relabel / dismiss. A decided card says what was decided, in words, with an undo.

function verdictText(finding, decision) {
  if (decision === "accept") return `Accepted ✓ — ${finding.excluded} track${finding.excluded === 1 ? "" : "s"} left out of train and evaluate`;
  if (decision === "relabel") return `Relabelled as ${finding.relabel.join(", ")} ✓ — train and evaluate read it under that genre`;
  if (decision === "dismiss") return "Dismissed — kept as it is";
  return "";
}

function renderDecision(item, finding) {
  const box = item.querySelector(".decide");
  const decision = item.dataset.decision;
  box.replaceChildren();
  if (decision !== "undecided") {
    const undo = el("button", {type: "button", className: "undo", textContent: "Undo"});
    undo.addEventListener("click", () => decide(item, finding, "undecided"));
    box.append(el("p", {className: "verdict", textContent: verdictText(finding, decision)}), undo);
    return;
  }
  const accept = finding.kind.endsWith("duplicate") ? "Accept: keep one copy" : "Accept: leave it out";
  const choices = finding.excluded ? [["accept", accept]] : [];
  if (finding.relabel.length) choices.push(["relabel", `Relabel as ${finding.relabel.join(", ")}`]);
  choices.push(["dismiss", "Dismiss"]);
  for (const [value, text] of choices) {
    const button = el("button", {type: "button", className: value, textContent: text});
    button.dataset.decision = value;
    button.addEventListener("click", () => decide(item, finding, value));
    box.append(button);
  }
}

async function decide(item, finding, decision) {
  const response = await fetch(`/api/audit/${encodeURIComponent(finding.key)}`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({decision}),
  });
  const body = await response.json();
  if (!response.ok) return showError(body.error || "the decision was not saved");
  showError("");
  item.dataset.decision = body.decision;
  renderDecision(item, finding);
}

function renderFinding(finding, index) {
  const item = el("li", {className: "audit-finding"});
  item.dataset.decision = finding.decision || "undecided";
  item.dataset.key = finding.key;
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
  if (finding.excluded || finding.relabel.length) {
    item.append(el("div", {className: "decide"}));
    renderDecision(item, finding);
  }
  return item;
}

async function load() {
  const response = await fetch("/api/audit");
  const body = await response.json();
  if (response.status === 404 && body.start) {
    document.getElementById("summary").textContent = "No dataset to audit yet.";
    document.getElementById("hint").hidden = true;
    document.getElementById("start").hidden = false;
    return;
  }
  if (!response.ok) return showError(body.error || "the audit failed");
  const counts = Object.entries(body.counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ");
  document.getElementById("summary").textContent =
    `${body.dataset}: ${body.tracks} tracks, ${body.genres.length} genres — ${counts || "nothing found"}`;
  const pairs = document.getElementById("pairs");
  pairs.querySelector("img").src = "/api/audit/label-pairs.png";
  pairs.hidden = false;
  const list = document.getElementById("findings");
  body.findings.forEach((finding, i) => list.append(renderFinding(finding, i)));
}

load().catch((err) => showError(String(err)));
