// The ttsq console: try a voice (streamed), queue narrations, watch them live, listen. Same-origin API calls only.
"use strict";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["queued", "running"]);
const WAIT_S = 20; // long-poll hold: each active job's row changes as soon as the job does
const KEY_STORE = "ttsq-api-key"; // sessionStorage only: the key is gone when the tab is
const state = { key: sessionStorage.getItem(KEY_STORE) || "", cursor: null, polling: new Set() };

function authHeaders(extra = {}) {
  return state.key ? { ...extra, Authorization: `Bearer ${state.key}` } : extra;
}

class NeedsKey extends Error {}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new NeedsKey(state.key ? "that API key was refused" : "this server needs an API key");
  }
  return response;
}

async function callJson(path, options) {
  const response = await call(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error?.message || response.statusText);
  return body;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function say(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// --- speakers --------------------------------------------------------------------------------------------------------
async function loadSpeakers() {
  const body = await callJson("/v1/speakers");
  for (const id of ["try-speaker", "narrate-speaker"]) {
    const options = body.speakers.map((s) => el("option", { value: s.name, textContent: s.available ? s.name : `${s.name} (no worker)` }));
    $(id).replaceChildren(...options);
  }
}

// --- try: speech streamed through /v1/audio/speech -------------------------------------------------------------------
async function speak() {
  const audio = $("try-audio");
  const body = {
    model: "tts-1",
    voice: $("try-speaker").value,
    input: $("try-text").value,
    response_format: $("try-format").value,
    speed: Number($("try-speed").value) || 1,
  };
  const started = performance.now();
  say("try-status", "speaking...");
  audio.addEventListener("playing", () => say("try-status", `first audio after ${Math.round(performance.now() - started)} ms`), { once: true });
  const response = await call("/v1/audio/speech", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await response.json();
    say("try-status", error.error?.message || response.statusText, true);
    return;
  }
  const type = (response.headers.get("Content-Type") || "").split(";")[0];
  if (window.MediaSource && MediaSource.isTypeSupported(type)) {
    await streamInto(audio, response, type);
  } else {
    // A format MediaSource does not take here (wav, flac...): play it once it is whole.
    audio.src = URL.createObjectURL(await response.blob());
    await audio.play();
  }
}

async function streamInto(audio, response, type) {
  const source = new MediaSource();
  audio.src = URL.createObjectURL(source);
  await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = source.addSourceBuffer(type);
  const reader = response.body.getReader();
  let playing = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    await new Promise((resolve, reject) => {
      buffer.addEventListener("updateend", resolve, { once: true });
      buffer.addEventListener("error", reject, { once: true });
      buffer.appendBuffer(value);
    });
    if (!playing) {
      playing = true;
      audio.play().catch(() => {}); // the first piece is in: play while the rest streams
    }
  }
  source.endOfStream();
}

// --- narrate: queue a job --------------------------------------------------------------------------------------------
async function readFile(file) {
  $("narrate-text").value = await file.text();
  say("narrate-status", `${file.name}: ${$("narrate-text").value.length} characters`);
}

async function queueJob() {
  const body = {
    text: $("narrate-text").value,
    speaker: $("narrate-speaker").value,
    format: $("narrate-format").value,
    marks: $("narrate-marks").checked,
  };
  const job = await callJson("/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  say("narrate-status", `queued ${job.id}`);
  const row = renderJob(job);
  $("job-list").prepend(row);
  follow(job.id);
}

// --- jobs: the key's own, newest first, live ---------------------------------------------------------------------------
async function loadJobs(more = false) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && state.cursor) query.set("cursor", state.cursor);
  const body = await callJson(`/v1/jobs?${query}`);
  const rows = body.jobs.map(renderJob);
  if (more) $("job-list").append(...rows);
  else $("job-list").replaceChildren(...rows);
  state.cursor = body.next_cursor;
  $("more-jobs").hidden = !body.next_cursor;
  for (const job of body.jobs) if (ACTIVE.has(job.status)) follow(job.id);
}

async function follow(id) {
  if (state.polling.has(id)) return;
  state.polling.add(id);
  // The last answer's ETag is the poll's cursor: a change between two polls is answered at once, never waited past
  // (without it a poll waits for the change after the one it missed). The first read, at once, fetches it.
  let cursor = null;
  try {
    for (let failures = 0; failures < 30; ) {
      try {
        const path = cursor ? `/v1/jobs/${id}?wait=${WAIT_S}` : `/v1/jobs/${id}`;
        const asked = performance.now();
        const response = await call(path, { cache: "no-store", headers: cursor ? { "If-None-Match": cursor } : {} });
        if (response.status === 304) {
          // The wait ran out with nothing new: ask again (after a second where the server could not hold it).
          failures = 0;
          if (performance.now() - asked < 1000) await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        const job = await response.json();
        if (!response.ok) throw new Error(job.error?.message || response.statusText);
        cursor = response.headers.get("ETag");
        const row = document.getElementById(`job-${id}`);
        if (row) row.replaceWith(renderJob(job));
        if (!ACTIVE.has(job.status)) return;
        failures = 0;
      } catch (error) {
        if (error instanceof NeedsKey) return;
        failures += 1;
        await new Promise((resolve) => setTimeout(resolve, 1000 * failures));
      }
    }
  } finally {
    state.polling.delete(id);
  }
}

function seconds(value) {
  return value === null || value === undefined ? "?" : `${Number(value).toFixed(1)} s`;
}

function renderJob(job) {
  const progress = job.progress || {};
  const head = el(
    "div",
    { className: "job-head" },
    el("span", { className: `status status-${job.status}`, textContent: job.status }),
    el("span", { textContent: `${job.speaker} · ${job.format} · ${job.text_chars} chars` }),
    el("time", { textContent: new Date(job.created_at).toLocaleString() }),
  );
  const row = el("li", { className: "job", id: `job-${job.id}` }, head);
  row.dataset.status = job.status;
  if (ACTIVE.has(job.status)) {
    const bar = el("progress", { max: 1, value: progress.fraction || 0 });
    bar.setAttribute("aria-label", `progress of ${job.id}`);
    const eta = progress.eta_s === null || progress.eta_s === undefined ? "" : `, about ${seconds(progress.eta_s)} left`;
    const done = `${progress.chunks_done || 0}/${progress.chunks_total ?? "?"} chunks, ${seconds(progress.audio_s)} of audio${eta}`;
    const cancel = el("button", { type: "button", className: "cancel", textContent: "Cancel" });
    cancel.addEventListener("click", () => cancelJob(job.id).catch((error) => say("narrate-status", error.message, true)));
    row.append(bar, el("p", { className: "progress-text", textContent: done }), cancel);
  } else if (job.status === "failed") {
    row.append(el("p", { className: "error", textContent: job.error ? `${job.error.code}: ${job.error.message}` : "failed" }));
  } else if (job.status === "succeeded" && job.result) {
    const result = job.result;
    const audio = el("audio", { controls: true, preload: "metadata", src: result.url });
    const size = `${(result.size_bytes / 1e6).toFixed(2)} MB`;
    const download = el("a", { href: result.url, download: `${job.id}.${result.format}`, textContent: "Download" });
    row.append(el("p", { textContent: `${seconds(result.duration_s)} · ${size} ` }, download), audio);
    if (result.marks && result.marks.length) {
      const marks = result.marks.map((mark) => {
        const button = el("button", { type: "button", textContent: `${seconds(mark.start_s)} ${mark.text}` });
        button.addEventListener("click", () => {
          audio.currentTime = mark.start_s;
          audio.play().catch(() => {});
        });
        return el("li", {}, button);
      });
      row.append(el("ul", { className: "marks" }, ...marks));
    }
  }
  return row;
}

async function cancelJob(id) {
  const job = await callJson(`/v1/jobs/${id}/cancel`, { method: "POST" });
  const row = document.getElementById(`job-${id}`);
  if (row) row.replaceWith(renderJob(job));
}

// --- workers: who is alive, what each serves, queue depth per speaker --------------------------------------------------
async function loadWorkers() {
  const ready = await fetch("/readyz").then((r) => r.json());
  const metrics = await fetch("/metrics").then((r) => (r.ok ? r.text() : ""));
  const depth = {};
  for (const match of metrics.matchAll(/^ttsq_queue_depth\{queue="[^"]*speaker\.([^"]+)"\} (\S+)$/gm)) depth[match[1]] = Number(match[2]);
  const serving = ready.serving || {};
  const rows = (ready.workers || []).map((name) => {
    const speakers = (serving[name] || []).map((s) => `${s} (queue ${depth[s] ?? 0})`).join(", ");
    return el("li", { textContent: `${name}: ${speakers || "no speakers"}` });
  });
  $("worker-list").replaceChildren(...rows);
  say("workers-status", rows.length ? "" : ready.error?.message || "no worker is alive", !rows.length);
}

// --- start -----------------------------------------------------------------------------------------------------------------
function report(id) {
  return (error) => say(id, error.message, true);
}

async function start() {
  if (document.body.dataset.keys === "true" && !state.key) {
    $("key-form").hidden = false; // ask first: no request is sent without the key this server needs
    return;
  }
  try {
    await loadSpeakers();
    $("key-form").hidden = !state.key;
    await loadJobs();
  } catch (error) {
    say(error instanceof NeedsKey ? "key-status" : "narrate-status", error.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem(KEY_STORE, state.key);
    say("key-status", "");
    start();
  });
  $("speak").addEventListener("click", () => speak().catch(report("try-status")));
  $("queue").addEventListener("click", () => queueJob().catch(report("narrate-status")));
  $("more-jobs").addEventListener("click", () => loadJobs(true).catch(report("narrate-status")));
  $("narrate-file").addEventListener("change", (event) => event.target.files[0] && readFile(event.target.files[0]).catch(report("narrate-status")));
  $("narrate-text").addEventListener("dragover", (event) => event.preventDefault());
  $("narrate-text").addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files[0]) readFile(event.dataTransfer.files[0]).catch(report("narrate-status"));
  });
  start();
  loadWorkers().catch(report("workers-status"));
  setInterval(() => loadWorkers().catch(report("workers-status")), 5000);
});
