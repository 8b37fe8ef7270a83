// The landing page's trainer: controls, a progress bar, the live loss curve and the names.
// Training runs in train-worker.mjs (Pyodide in a Web Worker); its messages are gathered
// here and drawn at most once per animation frame and every FRAME_MS, so the page takes
// little of the processor the training needs.
// The current run is window.microgptRun: {stage, steps, seed, temperature, losses, names,
// timings (ms after the click: firstLoss, names, done), state, error}.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var W = 640, H = 250, LEFT = 40, RIGHT = 10, TOP = 10, BOTTOM = 26, MEAN = 50, FRAME_MS = 80;
  var worker = null;
  var run = null;
  var previous = null; // the last finished run's mean curve, drawn dashed
  var frame = 0;
  var lastDraw = -Infinity;
  var drawnNames = 0;

  function startWorker() {
    worker = new Worker("train-worker.mjs", { type: "module" });
    worker.onmessage = function (event) { receive(event.data); };
    worker.onerror = function (event) {
      event.preventDefault();
      fail(event.message || "the training worker could not start (a browser without module workers?)");
      worker = null;
    };
  }

  function settings() {
    var steps = Number($("steps").value), seed = Number($("seed").value);
    var temperature = Number($("temperature").value);
    if (!Number.isInteger(steps) || steps < 1 || steps > 100000) return "Steps: a whole number from 1 to 100000.";
    if (!Number.isInteger(seed)) return "Seed: a whole number.";
    if (!(temperature >= 0.01 && temperature <= 10)) return "Temperature: a number from 0.01 to 10.";
    return { stage: $("stage").value, steps: steps, seed: seed, temperature: temperature, samples: 20 };
  }

  function train(event) {
    event.preventDefault();
    if (run && run.state === "running") return;
    var s = settings();
    if (typeof s === "string") { status(s, true); return; }
    if (run && run.state !== "running" && run.losses.length) {
      previous = { losses: run.losses, steps: run.steps }; // drawn dashed beside the new run
    }
    run = {
      stage: s.stage, steps: s.steps, seed: s.seed, temperature: s.temperature, samples: s.samples,
      losses: [], names: [], timings: {}, state: "running", error: null, t0: performance.now(),
    };
    window.microgptRun = run;
    drawnNames = 0;
    $("names").textContent = "";
    $("progress").max = s.steps + s.samples;
    $("progress").value = 0;
    $("train").disabled = true;
    $("stop").disabled = false;
    status("Starting…");
    draw();
    if (!worker) startWorker();
    worker.postMessage({ type: "train", stage: s.stage, steps: s.steps, seed: s.seed,
                         temperature: s.temperature, samples: s.samples });
  }

  function stop() {
    if (worker && run && run.state === "running") worker.postMessage({ type: "stop" });
  }

  function receive(m) {
    if (!run) return;
    if (m.type === "status") status(m.text);
    else if (m.type === "start") run.info = m;
    else if (m.type === "losses") Array.prototype.push.apply(run.losses, m.values);
    else if (m.type === "name") run.names.push(m.name);
    else if (m.type === "done") { run.state = m.stopped ? "stopped" : "done"; run.ms = m.ms; }
    else if (m.type === "error") fail(m.message);
    if (m.type === "done" || m.type === "error") {
      cancelAnimationFrame(frame); // the end is drawn at once: the page says what it holds
      frame = 0;
      draw();
    } else {
      schedule();
    }
  }

  function fail(message) {
    if (run) { run.state = "error"; run.error = message; }
    finish();
    status("Error: " + message, true);
  }

  function finish() {
    $("train").disabled = false;
    $("stop").disabled = true;
  }

  function status(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(function tick(now) {
      if (now - lastDraw < FRAME_MS && run.state === "running") {
        frame = requestAnimationFrame(tick);
        return;
      }
      frame = 0;
      lastDraw = now;
      draw();
    });
  }

  function seconds(ms) { return (ms / 1000).toFixed(1) + " s"; }

  function draw() {
    if (!run) return;
    var now = performance.now() - run.t0, n = run.losses.length;
    drawCurve();
    var list = $("names");
    for (; drawnNames < run.names.length; drawnNames++) {
      var li = document.createElement("li");
      li.textContent = run.names[drawnNames];
      list.appendChild(li);
    }
    $("progress").value = n + run.names.length;
    if (n && run.timings.firstLoss === undefined) run.timings.firstLoss = now;
    if (run.names.length === run.samples && run.timings.names === undefined) run.timings.names = now;
    if (run.state === "error") return;
    if (run.state === "running" && n) {
      var what = n < run.steps ? "training" : "sampling names";
      status(what + ": step " + n + " / " + run.steps + ", loss " + run.losses[n - 1].toFixed(4) +
             (run.info ? " (" + run.info.stage + ", " + run.info.params + " parameters, " +
                         run.info.docs.toLocaleString("en") + " names)" : ""));
    } else if ((run.state === "done" || run.state === "stopped") && run.timings.done === undefined) {
      run.timings.done = now;
      var how = run.state === "stopped" ? "Stopped after " + n + " steps" : "Trained " + n + " steps";
      status(how + " of " + run.stage + " in " + seconds(run.ms.train) + " (Python started in " +
             seconds(run.ms.python) + "); " + run.names.length + " names. Final loss " +
             (n ? run.losses[n - 1].toFixed(4) : "-") + ".");
      finish();
    }
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // mean of the last MEAN losses at every step; at most one point per pixel column
  function curves(losses, steps) {
    var raw = [], mean = [], sum = 0, width = W - LEFT - RIGHT;
    var every = Math.max(1, Math.ceil(losses.length / width));
    for (var i = 0; i < losses.length; i++) {
      sum += losses[i];
      if (i >= MEAN) sum -= losses[i - MEAN];
      if (i % every === 0 || i === losses.length - 1) {
        raw.push([i + 1, losses[i]]);
        mean.push([i + 1, sum / Math.min(i + 1, MEAN)]);
      }
    }
    return { raw: raw, mean: mean, steps: steps };
  }

  // the axes alone before the first run; then the run's curve (and the previous one's)
  function drawCurve() {
    var current = run || { losses: [], steps: Number($("steps").value) || 1000 };
    var svg = $("loss"), n = current.losses.length;
    var mine = curves(current.losses, current.steps);
    var old = previous ? curves(previous.losses, previous.steps) : null;
    var lo = 3.3, hi = 3.3;
    [mine, old].forEach(function (c) {
      if (!c) return;
      c.raw.forEach(function (p) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); });
    });
    lo = Math.floor(lo * 2) / 2; hi = Math.ceil(hi * 2) / 2;
    if (hi - lo < 1) lo = hi - 1;
    var steps = Math.max(current.steps, old ? old.steps : 1);
    var x = function (step) { return LEFT + (step / steps) * (W - LEFT - RIGHT); };
    var y = function (loss) { return TOP + ((hi - loss) / (hi - lo)) * (H - TOP - BOTTOM); };
    var points = function (ps) {
      return ps.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
    };
    svg.textContent = "";
    for (var v = lo; v <= hi + 1e-9; v += 0.5) {
      svg.appendChild(el("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }));
      svg.appendChild(el("text", { x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
    }
    [0, Math.round(steps / 2), steps].forEach(function (s) {
      svg.appendChild(el("text", { x: x(s), y: H - 8, "text-anchor": s ? (s === steps ? "end" : "middle") : "start" },
                         s === steps ? "step " + s : String(s)));
    });
    if (old) svg.appendChild(el("polyline", { class: "previous", points: points(old.mean) }));
    svg.appendChild(el("polyline", { class: "raw", points: points(mine.raw) }));
    svg.appendChild(el("polyline", { class: "mean", points: points(mine.mean) }));
    svg.setAttribute("data-steps", String(n));
  }

  $("controls").addEventListener("submit", train);
  $("stop").addEventListener("click", stop);
  drawCurve();
})();
