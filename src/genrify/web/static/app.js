// genrify's page. Plain JS, no dependencies. Text from the server or the user is
// only ever inserted with textContent / value, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const artistInput = $("artist");
  const trackInput = $("track");
  const predictBtn = $("predict");
  const fileInput = $("file");
  const drop = $("drop");
  const statusEl = $("status");
  const result = $("result");
  const player = $("player");
  let objectUrl = null;
  let busy = false;
  let touched = false; // the user typed: never replace their text with an example

  function smoothly() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth";
  }

  function setStatus(text, kind) {
    statusEl.textContent = text || "";
    statusEl.className = "status" + (kind ? " " + kind : "");
    // On a phone the status line sits below the fold: an error nobody sees is no answer. Centred, so
    // the suggestions and the drop box above it come into view with it.
    const box = statusEl.getBoundingClientRect();
    if (kind === "error" && (box.top < 0 || box.bottom > window.innerHeight)) {
      statusEl.scrollIntoView({ block: "center", behavior: smoothly() });
    }
  }

  function setBusy(on) {
    busy = on;
    predictBtn.disabled = on;
    fileInput.disabled = on;
    drop.classList.toggle("busy", on);
  }

  function percent(p) {
    return Math.round(Math.max(0, Math.min(1, Number(p) || 0)) * 100) + "%";
  }

  function clearResult() {
    result.hidden = true;
    player.pause();
    $("suggestions").hidden = true;
  }

  // The verdict in one sentence, for screen readers (the result itself is not a live region:
  // its many parts would be read out piecemeal as they fill in).
  function summary(data, name) {
    const top = (data.top || [])[0];
    if (data.verdict === "genre" && top) return name + ": " + top[0] + ", certainty " + percent(top[1]) + ".";
    return name + ": " + (data.message || "the model is not sure.");
  }

  // On a phone the result starts below the fold: bring it into view once it is there.
  function reveal(data, name) {
    $("announce").textContent = summary(data, name);
    result.scrollIntoView({ block: "start", behavior: smoothly() });
    result.focus({ preventScroll: true });
  }

  function show(data, audioUrl, name) {
    $("song-name").textContent = name;
    const verdict = $("verdict");
    const heading = $("best-heading");
    const top = $("top");
    top.replaceChildren();
    (data.top || []).forEach(function (item, i) {
      const li = document.createElement("li");
      li.textContent = (i + 1) + ". " + item[0] + ", certainty: " + percent(item[1]);
      top.appendChild(li);
    });
    const styles = $("styles");
    const named = (data.styles || []).map(function (s) {
      return s.name + " (" + percent(s.share) + " of " + data.genre + ")";
    });
    styles.textContent = named.length ? "Style: " + named.join(", ") : "";
    styles.hidden = !named.length || data.verdict !== "genre";
    if (data.verdict === "genre") {
      verdict.hidden = true;
      heading.textContent = "The best prediction of the model:";
      top.hidden = false;
    } else {
      verdict.hidden = false;
      verdict.textContent = data.message || "The model is not sure.";
      verdict.className = "verdict " + data.verdict;
      heading.textContent = data.verdict === "unsure" ? "Its closest guesses, for what they are worth:" : "";
      top.hidden = data.verdict !== "unsure";
    }
    heading.hidden = !heading.textContent;
    const images = data.images || {};
    $("mfcc").src = images.features ? "data:image/png;base64," + images.features : "";
    $("mfcc").hidden = !images.features;
    if (images.features_title) $("features-caption").textContent = images.features_title + ".";
    const timeline = images.timeline && data.verdict !== "not_music";
    $("timeline").src = timeline ? "data:image/png;base64," + images.timeline : "";
    $("timeline-figure").hidden = !timeline;
    result.hidden = false;
    reveal(data, name);
    if (audioUrl) {
      // Ready, not playing: sound that starts by itself startles (and may be somewhere it should not be).
      player.src = audioUrl;
      player.hidden = false;
    } else {
      player.removeAttribute("src");
      player.hidden = true;
    }
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON */ }
    return "The server answered " + response.status + ".";
  }

  async function predictSong(event) {
    event.preventDefault();
    if (busy) return;
    touched = true;
    const artist = artistInput.value.trim();
    const track = trackInput.value.trim();
    if (!track) { setStatus("Type a song title first.", "error"); trackInput.focus(); return; }
    clearResult();
    setBusy(true);
    setStatus("Listening…");
    try {
      const params = new URLSearchParams({ artist: artist, track: track, top_k: "2" });
      const response = await fetch("/api/predict?" + params.toString(), { headers: { Accept: "application/json" } });
      if (response.status === 404) {
        let body = {};
        try { body = await response.json(); } catch (e) { /* not JSON */ }
        showSuggestions(body.suggestions || []); // first: they move the status line, which then scrolls into view
        // The server's words: they say what was searched, and mention previews only where one was looked for.
        setStatus((body.error || "The song could not be found") + "." +
                  (body.retry ? " (A music service did not answer; try again later.)" : "") +
                  " Have it as a file? Drop it in the box above, or choose it there.", "error");
        return;
      }
      if (!response.ok) {
        const retry = response.headers.get("Retry-After");
        setStatus(await errorText(response) + (retry ? " (try again in " + retry + " s)" : ""), "error");
        return;
      }
      const data = await response.json();
      const song = data.song || {};
      setStatus("");
      show(data, data.audio_url, (song.artist ? song.artist + " – " : "") + (song.title || track));
    } catch (e) {
      setStatus("The server could not be reached.", "error");
    } finally {
      setBusy(false);
    }
  }

  async function predictFile(file) {
    if (!file || busy) return;
    clearResult();
    setBusy(true);
    setStatus("Uploading and listening…");
    try {
      const body = new FormData();
      body.append("file", file, file.name);
      const response = await fetch("/api/predict?top_k=2", { method: "POST", body: body });
      if (!response.ok) { setStatus(await errorText(response), "error"); return; }
      const data = await response.json();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(file);
      // The answer is about the file now: the search fields no longer describe it.
      artistInput.value = "";
      trackInput.value = "";
      touched = true;
      setStatus("");
      show(data, objectUrl, file.name);
    } catch (e) {
      setStatus("The upload failed.", "error");
    } finally {
      setBusy(false);
      fileInput.value = "";
    }
  }

  function songButton(cls, song) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = (song.artist ? song.artist + " – " : "") + song.title;
    b.addEventListener("click", function () {
      artistInput.value = song.artist;
      trackInput.value = song.title;
      touched = true;
      form.requestSubmit();
    });
    return b;
  }

  function showSuggestions(list) {
    const box = $("suggestions");
    box.querySelectorAll("button").forEach(function (b) { b.remove(); });
    list.forEach(function (song) { box.appendChild(songButton("suggestion", song)); });
    box.hidden = !list.length;
  }

  function showDemo(demo) {
    const note = $("demo-note");
    if (!demo) return;
    note.textContent = demo.note || "";
    note.className = "demo-note" + (demo.kind === "synthetic" ? " synthetic" : "");
    note.hidden = !demo.note;
    const list = $("credits-list");
    list.replaceChildren();
    (demo.credits || []).forEach(function (c) {
      const li = document.createElement("li");
      li.textContent = "“" + c.title + "” by " + c.artist + " (" + c.licence + "; Debian package " + c.package + ")";
      list.appendChild(li);
    });
    $("credits").hidden = !(demo.credits || []).length;
  }

  async function loadExamples() {
    try {
      const response = await fetch("/api/examples?n=4");
      if (!response.ok) return;
      const data = await response.json();
      showDemo(data.demo);
      const list = data.examples || [];
      if (!list.length) return;
      const box = $("examples");
      const known = list.some(function (ex) {
        return ex.artist === artistInput.value && ex.title === trackInput.value;
      });
      if (!known && !touched) {
        artistInput.value = list[0].artist;
        trackInput.value = list[0].title;
      }
      list.forEach(function (ex) { box.appendChild(songButton("example", ex)); });
      box.hidden = false;
    } catch (e) { /* examples are optional */ }
  }

  async function loadLimits() {
    try {
      const response = await fetch("/healthz");
      if (!response.ok) return;
      const data = await response.json();
      if (data.max_upload_mb) $("max-mb").textContent = String(data.max_upload_mb);
    } catch (e) { /* optional */ }
  }

  [artistInput, trackInput].forEach(function (input) {
    input.addEventListener("input", function () { touched = true; });
  });
  form.addEventListener("submit", predictSong);
  fileInput.addEventListener("change", function () { predictFile(fileInput.files[0]); });
  ["dragenter", "dragover"].forEach(function (type) {
    drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) predictFile(files[0]);
  });
  drop.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); }
  });
  loadExamples();
  loadLimits();
})();
