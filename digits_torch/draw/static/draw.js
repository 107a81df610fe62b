// The draw-a-digit page. It draws and shows; the server reads: each stroke sends the drawing as
// a PNG to POST /predict, which makes it into the network's input with the package's own code.
"use strict";

const SIDE = 20; // the input is 20 x 20, unrolled column-major: pixel (r, c) at 20 c + r
const SEND_SIDE = 140; // pixels a side of the PNG sent: the drawing, redrawn at this size
const PEN = 0.075; // the pen's width, a share of the pad's side (about MNIST's stroke for a digit
                   // drawn across most of the pad)

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const statusLine = document.getElementById("status");
let strokes = []; // each stroke: its points in the pad's own pixels
let sample = null; // the input of a shipped digit shown on the pad, or null
let asked = 0; // requests made: an answer to an older one than the latest is dropped
let units = []; // per hidden unit: {tile, canvas, level}

// ------------------------------------------------------------------------------- drawing

function paint(context, side) {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, side, side);
  if (sample) {
    context.imageSmoothingEnabled = false;
    context.drawImage(inputImage(sample), 0, 0, side, side);
  }
  const scale = side / pad.width;
  context.strokeStyle = "#000";
  context.fillStyle = "#000";
  context.lineWidth = PEN * side;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const points of strokes) {
    context.beginPath();
    context.moveTo(points[0][0] * scale, points[0][1] * scale);
    for (const [x, y] of points.slice(1)) context.lineTo(x * scale, y * scale);
    if (points.length === 1) context.lineTo(points[0][0] * scale + 0.01, points[0][1] * scale);
    context.stroke();
  }
}

function where(event) {
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) / box.width) * pad.width,
    ((event.clientY - box.top) / box.height) * pad.height,
  ];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (sample) sample = null; // a new drawing replaces the shipped digit
  strokes.push([where(event)]);
  paint(pen, pad.width);
});

pad.addEventListener("pointermove", (event) => {
  if (!pad.hasPointerCapture(event.pointerId) || strokes.length === 0) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) strokes[strokes.length - 1].push(where(e));
  paint(pen, pad.width);
});

function endStroke(event) {
  if (!pad.hasPointerCapture(event.pointerId)) return;
  pad.releasePointerCapture(event.pointerId);
  send();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// ------------------------------------------------------------------------------- asking

async function ask(url, options) {
  const number = ++asked;
  const response = await fetch(url, options);
  const body = await response.json();
  if (number !== asked) return null; // a newer request was made meanwhile
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function send() {
  const copy = document.createElement("canvas");
  copy.width = copy.height = SEND_SIDE;
  paint(copy.getContext("2d"), SEND_SIDE);
  copy.toBlob(async (png) => {
    try {
      const answer = await ask("/predict", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: png,
      });
      if (answer) show(answer, "");
    } catch (error) {
      fail(error);
    }
  }, "image/png");
}

async function showShipped(mistake) {
  try {
    const answer = await ask(mistake ? "/random-mistake" : "/random-digit");
    if (!answer) return;
    strokes = [];
    sample = answer.input;
    paint(pen, pad.width);
    const read = answer.digit === answer.label ? "read right" : `read as ${answer.digit}`;
    show(answer, `Shipped digit #${answer.index + 1} of 5,000: a ${answer.label}, ${read}.`);
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  statusLine.textContent = `Not read: ${error.message}`;
  statusLine.classList.add("error");
}

// ------------------------------------------------------------------------------- showing

function inputImage(input) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIDE;
  drawColumns(canvas, input, (v) => 255 * (1 - Math.min(1, Math.max(0, v))));
  return canvas;
}

// Put 400 column-major values on a 20 x 20 canvas as greys (grey(value): 0 black to 255 white).
function drawColumns(canvas, values, grey) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(SIDE, SIDE);
  for (let c = 0; c < SIDE; c++) {
    for (let r = 0; r < SIDE; r++) {
      const g = grey(values[SIDE * c + r]);
      const i = 4 * (SIDE * r + c);
      image.data[i] = image.data[i + 1] = image.data[i + 2] = g;
      image.data[i + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
}

function show(answer, text) {
  drawColumns(document.getElementById("input"), answer.input, (v) =>
    255 * (1 - Math.min(1, Math.max(0, v))));
  const digit = document.getElementById("digit");
  digit.textContent = String(answer.digit);
  digit.dataset.digit = String(answer.digit);
  const top = answer.probabilities[answer.digit];
  document.getElementById("confidence").textContent = `${(100 * top).toFixed(1)} % sure`;
  document.querySelectorAll("#bars li").forEach((row, d) => {
    const p = answer.probabilities[d];
    row.classList.toggle("top", d === answer.digit);
    row.querySelector(".fill").style.width = `${100 * p}%`;
    row.querySelector(".value").textContent = `${(100 * p).toFixed(1)} %`;
  });
  const strongest = Math.max(1e-9, ...answer.hidden);
  units.forEach((unit, k) => {
    const level = Math.max(0, answer.hidden[k]) / strongest;
    unit.tile.dataset.activation = String(answer.hidden[k]);
    unit.tile.title = `unit ${k + 1}: activation ${answer.hidden[k].toFixed(3)}`;
    if (!unit.tile.classList.contains("dead")) {
      unit.canvas.style.filter = `brightness(${0.15 + 0.85 * level})`;
    }
    unit.level.style.width = `${100 * level}%`;
  });
  statusLine.classList.remove("error");
  statusLine.textContent = text || `Read as ${answer.digit}. Draw more, undo, or clear.`;
  document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1);
}

function reset() {
  document.getElementById("digit").textContent = "?";
  delete document.getElementById("digit").dataset.digit;
  document.getElementById("confidence").textContent = "";
  drawColumns(document.getElementById("input"), new Array(SIDE * SIDE).fill(0), () => 255);
  document.querySelectorAll("#bars .fill").forEach((fill) => (fill.style.width = "0"));
  document.querySelectorAll("#bars .value").forEach((value) => (value.textContent = ""));
  units.forEach((unit) => {
    unit.canvas.style.filter = "";
    unit.level.style.width = "0";
  });
  statusLine.classList.remove("error");
  statusLine.textContent = "Draw a digit from 0 to 9, large, in the middle.";
}

function buildBars() {
  const bars = document.getElementById("bars");
  for (let d = 0; d < 10; d++) {
    const row = document.createElement("li");
    row.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value"></span>`;
    row.querySelector(".fill").style.display = "block";
    bars.append(row);
  }
}

// Each unit's incoming weights as a 20 x 20 image: grey 0, light positive, dark negative, full
// white or black at 2.5 standard deviations of the unit's weights (its largest few are outliers
// that would leave the rest grey).
function buildUnits(model) {
  const box = document.getElementById("units");
  units = model.hidden_weights.map((weights, k) => {
    const tile = document.createElement("div");
    tile.className = "unit" + (model.dead_units[k] ? " dead" : "");
    tile.dataset.unit = String(k);
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = SIDE;
    const spread = 2.5 * Math.sqrt(weights.reduce((sum, w) => sum + w * w, 0) / weights.length);
    drawColumns(canvas, weights, (w) =>
      127.5 + 127.5 * Math.max(-1, Math.min(1, w / Math.max(spread, 1e-12))));
    const level = document.createElement("div");
    level.className = "level";
    level.append(document.createElement("div"));
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = String(k + 1);
    tile.append(canvas, level, name);
    box.append(tile);
    return { tile, canvas, level: level.firstChild };
  });
  const count = model.hidden_weights.length;
  document.querySelector("#hidden h2").textContent = `The ${count} hidden units`;
}

async function start() {
  buildBars();
  paint(pen, pad.width);
  document.getElementById("clear").addEventListener("click", () => {
    strokes = [];
    sample = null;
    asked++; // an answer on its way is for the drawing just cleared
    paint(pen, pad.width);
    reset();
  });
  document.getElementById("undo").addEventListener("click", () => {
    if (!strokes.length) return; // nothing drawn: a shipped digit shown stays
    strokes.pop();
    paint(pen, pad.width);
    if (strokes.length) send();
    else {
      asked++;
      reset();
    }
  });
  document.getElementById("random").addEventListener("click", () => showShipped(false));
  document.getElementById("mistake").addEventListener("click", () => showShipped(true));
  const response = await fetch("/model");
  const model = await response.json();
  buildUnits(model);
  reset();
  const sizes = [model.architecture.input_size, ...model.architecture.hidden_sizes,
    model.architecture.num_classes].join("-");
  const accuracy = (100 * model.shipped_digits.accuracy).toFixed(2);
  document.getElementById("model").textContent =
    `${model.name}: ${sizes} ${model.architecture.activation}, ` +
    `${accuracy} % of the 5,000 shipped digits read right`;
  document.body.dataset.ready = "yes";
}

start().catch(fail);
