// omnimatte pick: draw a box or points per object on the video's frames and save them as sheet rows.
// Prompts are kept in the source video's pixels; the canvas shows the frames at the display size.
"use strict";

// The masks preview's colours (omnimatte/masks/previews.py PALETTE), one per object in list order.
const PALETTE = [[255, 70, 70], [60, 150, 255], [70, 220, 90], [255, 190, 0], [200, 90, 255], [0, 215, 215], [255, 120, 200]];
const canvas = document.getElementById("frame-canvas");
const context = canvas.getContext("2d");
const slider = document.getElementById("frame-slider");
const statusLine = document.getElementById("status");
const state = { info: null, frame: 0, objects: [], active: 0, images: new Map(), drag: null };

function colour(index, alpha = 1) {
  const [r, g, b] = PALETTE[index % PALETTE.length];
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function scale() {  // source pixels per display pixel
  return [state.info.source_width / state.info.display_width, state.info.source_height / state.info.display_height];
}

function toSource(event) {
  const rect = canvas.getBoundingClientRect();
  const [sx, sy] = scale();
  const x = (event.clientX - rect.left) * canvas.width / rect.width;
  const y = (event.clientY - rect.top) * canvas.height / rect.height;
  const clamp = (v, hi) => Math.round(Math.min(Math.max(v, 0), hi));
  return [clamp(x * sx, state.info.source_width), clamp(y * sy, state.info.source_height)];
}

function frameImage(index) {
  if (!state.images.has(index)) {
    const image = new Image();
    image.onload = draw;
    image.src = `/api/frames/${index}.jpg`;
    state.images.set(index, image);
  }
  return state.images.get(index);
}

function newObject(name) {
  return { name, frame: state.frame, masks: null, box: null, points: [], labels: [], mask: null };
}

function hasPrompt(object) {  // a mask folder from the sheet counts: the object needs no SAM prompt
  return object.masks !== null || object.box !== null || object.points.length > 0;
}

function draw() {
  const image = frameImage(state.frame);
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (image.complete && image.naturalWidth) context.drawImage(image, 0, 0, canvas.width, canvas.height);
  const [sx, sy] = scale();
  state.objects.forEach((object, index) => {
    if (object.frame !== state.frame) return;
    if (object.mask && object.mask.complete) context.drawImage(object.mask, 0, 0, canvas.width, canvas.height);
    context.lineWidth = index === state.active ? 3 : 2;
    context.strokeStyle = colour(index);
    if (object.box) {
      const [x0, y0, x1, y1] = object.box;
      context.strokeRect(x0 / sx, y0 / sy, (x1 - x0) / sx, (y1 - y0) / sy);
      context.fillStyle = colour(index);
      context.font = "bold 14px sans-serif";
      context.fillText(object.name, x0 / sx + 3, y0 / sy + 15);
    }
    object.points.forEach(([x, y], i) => {
      context.beginPath();
      context.arc(x / sx, y / sy, 6, 0, 2 * Math.PI);
      context.fillStyle = object.labels[i] ? "rgba(40, 220, 80, 0.9)" : "rgba(240, 40, 40, 0.9)";
      context.fill();
      context.stroke();
    });
  });
  if (state.drag && state.drag.moved) {
    const [x0, y0] = state.drag.start, [x1, y1] = state.drag.end;
    context.setLineDash([6, 4]);
    context.strokeStyle = colour(state.active);
    context.strokeRect(Math.min(x0, x1) / sx, Math.min(y0, y1) / sy, Math.abs(x1 - x0) / sx, Math.abs(y1 - y0) / sy);
    context.setLineDash([]);
  }
  document.getElementById("frame-label").textContent = `${state.frame} / ${state.info.count - 1}`;
}

function describe(object) {
  if (object.masks) return `mask folder ${object.masks}`;
  const parts = [];
  if (object.box) parts.push(`box ${object.box.join(",")}`);
  if (object.points.length) parts.push(`${object.points.length} point(s)`);
  return parts.length ? `${parts.join(", ")} on frame ${object.frame}` : "no prompt yet";
}

function renderList() {
  const list = document.getElementById("object-list");
  list.replaceChildren();
  state.objects.forEach((object, index) => {
    const item = document.createElement("li");
    item.className = index === state.active ? "active" : "";
    item.dataset.index = index;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(index);
    const name = document.createElement("input");
    name.className = "object-name";
    name.value = object.name;
    name.setAttribute("aria-label", `name of object ${index + 1}`);
    name.addEventListener("input", () => { object.name = name.value.trim(); draw(); });
    name.addEventListener("focus", () => select(index));
    const buttons = [["up", "\u2191", () => move(index, -1)], ["down", "\u2193", () => move(index, 1)],
                     ["remove", "\u2715", () => removeObject(index)]].map(([role, text, action]) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = role;
      button.textContent = text;
      button.title = role;
      button.addEventListener("click", (event) => { event.stopPropagation(); action(); });
      return button;
    });
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = describe(object);
    item.append(swatch, " ", name, ...buttons, prompt);
    item.addEventListener("click", () => select(index));
    list.append(item);
  });
}

function select(index) {  // marks the item without rebuilding the list, so a name field keeps its focus
  state.active = index;
  document.querySelectorAll("#object-list li").forEach((item) => {
    item.classList.toggle("active", Number(item.dataset.index) === index);
  });
  const object = state.objects[index];
  if (object && (object.box || object.points.length) && object.frame !== state.frame) showFrame(object.frame);
  draw();
}

function move(index, step) {
  const target = index + step;
  if (target < 0 || target >= state.objects.length) return;
  [state.objects[index], state.objects[target]] = [state.objects[target], state.objects[index]];
  state.active = target;
  renderList();
  draw();
}

function removeObject(index) {
  state.objects.splice(index, 1);
  state.active = Math.max(0, Math.min(state.active, state.objects.length - 1));
  renderList();
  draw();
}

function showFrame(index) {
  state.frame = index;
  slider.value = String(index);
  draw();
}

function promptChanged(object) {
  object.mask = null;
  renderList();
  draw();
  if (state.info.sam && (object.box || object.points.length)) previewMask(object);
}

async function previewMask(object) {
  const index = state.objects.indexOf(object);
  say(`SAM: segmenting ${object.name}\u2026`);
  const response = await fetch("/api/mask", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ frame: object.frame, box: object.box, points: object.points, labels: object.labels,
                           colour: index }),
  });
  const answer = await response.json();
  if (!response.ok) { say(answer.error, true); return; }
  const mask = new Image();
  mask.onload = draw;
  mask.src = `data:image/png;base64,${answer.png}`;
  object.mask = mask;
  canvas.dataset.maskShown = object.name;
  say(`SAM mask for ${object.name}: ${(100 * answer.coverage).toFixed(1)}% of the frame`);
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function activeObject() {
  if (!state.objects.length) { state.objects.push(newObject("object1")); state.active = 0; }
  const object = state.objects[state.active];
  if (object.frame !== state.frame || object.masks) {  // a prompt belongs to one frame and replaces a mask folder
    Object.assign(object, { frame: state.frame, masks: null, box: null, points: [], labels: [], mask: null });
  }
  return object;
}

canvas.addEventListener("mousedown", (event) => {
  state.drag = { start: toSource(event), end: toSource(event), moved: false };
});
canvas.addEventListener("mousemove", (event) => {
  if (!state.drag) return;
  state.drag.end = toSource(event);
  const [x0, y0] = state.drag.start, [x1, y1] = state.drag.end;
  state.drag.moved = state.drag.moved || Math.abs(x1 - x0) + Math.abs(y1 - y0) > 4;
  if (state.drag.moved) draw();
});
window.addEventListener("mouseup", (event) => {
  const drag = state.drag;
  state.drag = null;
  if (!drag || !state.info) return;
  const object = activeObject();
  if (drag.moved && tool() === "box") {
    const [x0, y0] = drag.start, [x1, y1] = drag.end;
    if (x0 === x1 || y0 === y1) { draw(); return; }
    object.box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    promptChanged(object);
  } else if (!drag.moved && event.target === canvas && tool() !== "box") {
    object.points.push(drag.start);
    object.labels.push(tool() === "negative" || event.shiftKey ? 0 : 1);
    promptChanged(object);
  } else {
    draw();
  }
});

slider.addEventListener("input", () => showFrame(Number(slider.value)));

document.getElementById("add-object").addEventListener("click", () => {
  let number = state.objects.length + 1;
  while (state.objects.some((object) => object.name === `object${number}`)) number += 1;
  state.objects.push(newObject(`object${number}`));
  state.active = state.objects.length - 1;
  renderList();
  draw();
});

document.getElementById("clear-prompt").addEventListener("click", () => {
  const object = state.objects[state.active];
  if (!object) return;
  Object.assign(object, { masks: null, box: null, points: [], labels: [], mask: null });
  renderList();
  draw();
});

document.getElementById("save").addEventListener("click", async () => {
  const unnamed = state.objects.find((object) => !/^[A-Za-z0-9_-]+$/.test(object.name));
  if (unnamed) { say(`'${unnamed.name}' cannot be an object name: use letters, digits, _ and -`, true); return; }
  const empty = state.objects.find((object) => !hasPrompt(object));
  if (!state.objects.length || empty) {
    say(empty ? `${empty.name} has no prompt: draw a box or click points` : "add an object first", true);
    return;
  }
  const objects = state.objects.map((object) => ({
    name: object.name, frame: object.frame, masks: object.masks, box: object.box,
    points: object.points.length ? object.points : null, labels: object.points.length ? object.labels : null,
  }));
  const response = await fetch("/api/save", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ objects }),
  });
  const answer = await response.json();
  if (!response.ok) { say(answer.error, true); return; }
  say(`Saved ${answer.rows.length} object(s) of ${state.info.sample} to ${answer.objects_sheet}`);
});

document.getElementById("done").addEventListener("click", async () => {
  await fetch("/api/done", { method: "POST" });
  say("Done: omnimatte pick has stopped (running it on the next clip, reload this page)");
});

async function start() {
  const response = await fetch("/api/info");
  state.info = await response.json();
  canvas.width = state.info.display_width;
  canvas.height = state.info.display_height;
  slider.max = String(state.info.count - 1);
  document.getElementById("sample-name").textContent = state.info.sample;
  document.getElementById("video-path").textContent =
    `${state.info.video} (${state.info.source_width}x${state.info.source_height}, ${state.info.count} frames)`;
  document.getElementById("sam-note").textContent = state.info.sam
    ? `${state.info.sam_note}: the mask of the selected object's prompt is shown` : state.info.sam_note;
  state.objects = state.info.objects.map((row) => ({
    name: row.name, frame: row.frame || 0, masks: row.masks || null, box: row.box || null, points: row.points || [],
    labels: row.labels || (row.points || []).map(() => 1), mask: null,
  }));
  if (!state.objects.length) state.objects.push(newObject("object1"));
  renderList();
  select(0);
  say("ready");
}

start();
