"use strict";
// The library page: one page of tagged songs at a time from /api/library (sorted and filtered by the server),
// a song's player and its genre over time. Every name is set as text, never as HTML: tags are anyone's input.

const PAGE = 50;
const view = {q: "", genre: "", verdict: "", sort: "song", order: "asc", offset: 0};
let loadCount = 0;
let playing = null;

function songName(row) {
  return row.song;  // artist – title, else the file's name: the server sorts by the same text
}

function percent(p) {
  return p === null || p === undefined ? "" : `${Math.round(p * 100)}%`;
}

function verdictText(v) {
  return v === "not_music" ? "not music" : (v || "");
}

// Where a song's genre tag stands (the "tag" of /api/library's rows), in words.
const TAG_TEXT = {
  "written": "written by genrify", "undone": "written, then undone", "kept": "its own genre kept",
  "unchanged": "already says so", "nothing": "nothing to write", "not written": "not written",
  "pending": "write not confirmed", "failed": "write failed", "no file": "file missing",
};

// The genre the file carries now, read from it by the server: "none" for no genre tag, "?" when unreadable.
function fileGenre(row) {
  return row.file_genres === null ? "?" : (row.file_genres.join(", ") || "none");
}

function tagText(row) {
  return TAG_TEXT[row.tag] || row.tag;
}

// Where the file is, under the song's name, unless that says it already.
function fileLine(row) {
  return el("span", {className: "file", textContent: songName(row) === row.name ? "" : row.name});
}

function renderRow(row) {
  const tr = el("tr");
  tr.dataset.id = row.id;
  if (row.id === playing) tr.className = "playing";
  const play = el("button", {type: "button", textContent: songName(row)});
  play.setAttribute("aria-label", `Play ${songName(row)}`);
  play.addEventListener("click", () => openSong(row.id));
  const cells = [
    el("td", {className: "col-name"}, [play, fileLine(row)]),
    el("td", {className: "col-artist", textContent: row.artist || ""}),
    el("td", {className: "col-genre", textContent: row.genre || ""}),
    el("td", {className: "col-style", textContent: row.styles.join(", ")}),
    el("td", {className: "col-file"}, [el("span", {className: "file-genre", textContent: fileGenre(row)}),
                                       el("span", {className: `tag tag-${row.tag.replace(" ", "-")}`,
                                                   textContent: tagText(row)})]),
    el("td", {className: "col-certainty", textContent: percent(row.certainty)}),
    el("td", {className: `col-verdict verdict-${row.verdict}`, textContent: verdictText(row.verdict)}),
  ];
  tr.append(...cells);
  return tr;
}

function fillGenres(body) {
  const select = document.getElementById("genre");
  const names = [...body.genres, ...body.styles.filter((s) => !body.genres.includes(s))];
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join("\n") === names.join("\n")) return;
  select.replaceChildren(el("option", {value: "", textContent: "all"}),
                         ...names.map((n) => el("option", {value: n, textContent: n})));
  select.value = names.includes(view.genre) ? view.genre : "";
}

function showSorting() {
  for (const th of document.querySelectorAll("th[data-sort]")) {
    if (th.dataset.sort === view.sort) th.setAttribute("aria-sort", view.order === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

function render(body) {
  const empty = body.index === null;
  document.getElementById("empty").hidden = !empty;
  document.getElementById("filters").hidden = empty;
  document.getElementById("table-box").hidden = empty;
  document.getElementById("pager").hidden = empty;
  if (empty) {
    document.getElementById("summary").textContent = "Nothing to show yet.";
    document.getElementById("empty-message").textContent = body.message;
    return;
  }
  const where = body.library ? ` under ${body.library}` : "";
  document.getElementById("summary").textContent =
    `${body.index.songs} songs${where} analysed by genrify tag. Sort by a column, filter, and play a song.` +
    (body.skipped.count ? ` ${body.skipped.count} damaged rows of the index were skipped.` : "");
  fillGenres(body);
  showSorting();
  const tbody = document.querySelector("#songs tbody");
  tbody.replaceChildren(...body.rows.map(renderRow));
  if (!body.rows.length) {
    tbody.append(el("tr", {}, [el("td", {colSpan: 7, textContent: "No song matches."})]));
  }
  const first = body.total ? body.offset + 1 : 0;
  document.getElementById("range").textContent =
    `${first}–${body.offset + body.rows.length} of ${body.total}`;
  document.getElementById("prev").disabled = body.offset === 0;
  document.getElementById("next").disabled = body.offset + body.rows.length >= body.total;
}

async function load() {
  const mine = ++loadCount;
  const params = new URLSearchParams({...view, limit: PAGE});
  const response = await fetch(`/api/library?${params}`);
  const body = await response.json();
  if (mine !== loadCount) return;  // a newer request was made meanwhile: its answer wins
  if (!response.ok) return showError(body.error || "the library could not be read");
  showError("");
  render(body);
  document.body.dataset.loaded = String(mine);
}

async function openSong(id) {
  const response = await fetch(`/api/library/${encodeURIComponent(id)}`);
  const song = await response.json();
  if (!response.ok) return showError(song.error || "the song could not be read");
  playing = id;
  for (const tr of document.querySelectorAll("#songs tbody tr")) {
    tr.classList.toggle("playing", tr.dataset.id === String(id));
  }
  const box = document.getElementById("song");
  document.getElementById("song-name").textContent = songName(song);
  const file = songName(song) === song.name ? "" : song.name;
  document.getElementById("song-file").textContent = [file, song.album && `album: ${song.album}`].filter(Boolean).join(" · ");
  const styles = song.styles.length ? ` (${song.styles.join(", ")})` : "";
  const certainty = song.certainty === null ? "" : `, ${percent(song.certainty)} sure`;
  document.getElementById("song-verdict").textContent = song.verdict === "genre"
    ? `${song.genre}${styles}${certainty}` : `${verdictText(song.verdict)}${certainty}: ${song.analysis.message || ""}`;
  const would = song.would_write.length ? song.would_write.join(", ") : "nothing";
  document.getElementById("song-tag").textContent =
    `In the file now: ${fileGenre(song)}. ` +
    `genrify tag would write, with its default settings: ${would} (${tagText(song)}).`;
  const player = document.getElementById("player");
  player.src = song.audio_url;
  const notMusic = song.verdict === "not_music";
  document.getElementById("timeline-figure").hidden = notMusic;
  document.getElementById("no-timeline").hidden = !notMusic;
  if (!notMusic) document.getElementById("timeline").src = song.timeline_url;
  box.hidden = false;
  box.scrollIntoView({block: "nearest"});
  player.play().catch(() => {});  // a browser may refuse to start sound by itself; the controls still play
}

function changed() {
  view.offset = 0;
  load().catch((err) => showError(String(err)));
}

let typing = null;
document.getElementById("q").addEventListener("input", (event) => {
  clearTimeout(typing);
  typing = setTimeout(() => { view.q = event.target.value.trim(); changed(); }, 250);
});
document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
for (const name of ["genre", "verdict"]) {
  document.getElementById(name).addEventListener("change", (event) => { view[name] = event.target.value; changed(); });
}
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const key = th.dataset.sort;
    if (view.sort === key) view.order = view.order === "asc" ? "desc" : "asc";
    else [view.sort, view.order] = [key, key === "certainty" ? "desc" : "asc"];
    changed();
  });
}
document.getElementById("prev").addEventListener("click", () => {
  view.offset = Math.max(0, view.offset - PAGE);
  load().catch((err) => showError(String(err)));
});
document.getElementById("next").addEventListener("click", () => {
  view.offset += PAGE;
  load().catch((err) => showError(String(err)));
});

load().catch((err) => showError(String(err)));
