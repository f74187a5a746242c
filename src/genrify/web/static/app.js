// genrify's page. Plain JS, no dependencies. Text from the server or the user is
// only ever inserted with textContent / value, never as HTML.
"use strict";

(function () {
  const NOT_FOUND = "The song could not be found or has no available preview";
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const artistInput = $("artist");
  const trackInput = $("track");
  const predictBtn = $("predict");
  const pauseBtn = $("pause");
  const fileInput = $("file");
  const drop = $("drop");
  const statusEl = $("status");
  const result = $("result");
  const player = $("player");
  let objectUrl = null;
  let busy = false;
  let touched = false; // the user typed: never replace their text with an example

  function setStatus(text, kind) {
    statusEl.textContent = text || "";
    statusEl.className = "status" + (kind ? " " + kind : "");
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
    pauseBtn.disabled = true;
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
    const named = (data.styles || []).map(function (s) { return s.name + " (" + percent(s.probability) + ")"; });
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
    $("timeline").src = images.timeline ? "data:image/png;base64," + images.timeline : "";
    $("timeline-figure").hidden = !images.timeline;
    result.hidden = false;
    if (audioUrl) {
      player.src = audioUrl;
      player.hidden = false;
      pauseBtn.disabled = false;
      const playing = player.play();
      if (playing && playing.catch) playing.catch(function () { /* autoplay refused: the controls remain */ });
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
        let retry = false;
        try { retry = Boolean((await response.json()).retry); } catch (e) { /* not JSON */ }
        setStatus(NOT_FOUND + (retry ? " (a music service did not answer; try again later)" : ""), "error");
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
      setStatus("");
      show(data, objectUrl, file.name);
    } catch (e) {
      setStatus("The upload failed.", "error");
    } finally {
      setBusy(false);
      fileInput.value = "";
    }
  }

  async function loadExamples() {
    try {
      const response = await fetch("/api/examples?n=4");
      if (!response.ok) return;
      const data = await response.json();
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
      list.forEach(function (ex) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "example";
        b.textContent = (ex.artist ? ex.artist + " – " : "") + ex.title;
        b.addEventListener("click", function () {
          artistInput.value = ex.artist;
          trackInput.value = ex.title;
          form.requestSubmit();
        });
        box.appendChild(b);
      });
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
  pauseBtn.addEventListener("click", function () { player.pause(); });
  player.addEventListener("play", function () { pauseBtn.disabled = false; });
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
