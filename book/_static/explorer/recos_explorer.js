/* The RECOS explorer: LeNet-5 in the browser, no kernel (book/explore.md).
 *
 * Data: window.RECOS_EXPLORER_DATA, assigned by explorer_data.js, which
 * recos_utils.explorer.export writes from Chapter 2's trained networks (weights as base64
 * little-endian float32, with their PyTorch state_dict names; test digits and Chapter 4's
 * background patches as uint8).
 *
 * The forward pass mirrors recos_utils.models.LeNet5.features: pad 28x28 -> 32x32 with
 * the network's pad_value, conv1 (K@5x5), activation, 2x2 pool, conv2 (16@5x5), activation,
 * pool, flatten (channel, row, column), fc1, activation, fc2, activation, fc3. It runs in
 * double precision on float32 weights.
 *
 * The input the network sees (Chapter 4, backgrounds.combine; then Chapter 2's reversal):
 *   x = max(digit, background patch / 255), then x -> 1 - x if "reverse" is on.
 *
 * API, window.recosExplorer (pixels: 784 numbers, row-major 28x28, before padding;
 * network: one of the exported names, "baseline", "negated", "paired", "both"):
 *   logits(pixels, network)      -> 10 logits (plain array)
 *   responses(pixels, network)   -> {input, padded, conv1_pre, conv1_post, pool1, conv2_pre,
 *                                   conv2_post, pool2, fc1_pre, fc1_post, fc2_pre, fc2_post:
 *                                   {shape, data}; logits, probabilities, prediction,
 *                                   zeroed: {conv1, conv2, fc1, fc2} (share of responses
 *                                   with pre-activation <= 0, which ReLU sets to zero)}
 *   readout(pixels, network, row, col) -> Chapter 1, Sec. 1.4 at conv1 location (row, col):
 *       x'' = (1, patch), a''_k = (b_k, a_k); {row, col, patch, x_norm, anchors: [{anchor,
 *       a_norm, cos, rec_cos, product = x_norm * a_norm * rec_cos, pre, response}]}
 *   weights(network)             -> {"conv1.weight": {shape, data}, ...}
 *   networks()                   -> the exported names; meta(network) -> its meta
 *   setInput(pixels)             -> sets the digit layer (clears strokes); reversal and
 *                                   background still apply
 *   setNetwork(name), setReversed(bool), setBackground(name or ""), selectDigit(i),
 *   clear(), undo(), hover(row, col) (the readout's location; null: the strongest response)
 *   state()                      -> {network, reversed, background, digit_index, strokes,
 *                                   digit (the digit layer), input (what the network
 *                                   sees), logits, probabilities, prediction, zeroed, readout,
 *                                   yours (the reader's network's source file, or null)}
 *   loadNetwork(text, source)    -> the reader's LeNet-5: `text` is the JSON that
 *                                   `recos-book export-weights` writes (explorer.export_weights);
 *                                   checked (kind, layers, shapes, float32, finite, size), then
 *                                   added as network "yours" and selected. A bad file throws and
 *                                   changes nothing (a previous "yours" stays).
 *   loadFile(file)               -> Promise: the file picker's path (FileReader, offline); resolves
 *                                   to {ok, message} and shows the message on the page.
 * Wrong input throws an Error that names the problem.
 */
(function () {
  "use strict";

  const SIDE = 28, PADDED = 32, KERNEL = 5, N_PIXELS = SIDE * SIDE;
  const DRAW = 280;                 // the drawing canvas, in canvas pixels (10 per input pixel)
  const STROKE = 28;                // stroke width in canvas pixels: 2.8 input pixels, as MNIST
  const MISSING = "The explorer's weights are missing: they are exported by `recos-book run` " +
    "when Chapter 2 runs (the file _static/explorer/explorer_data.js).";
  const DATA = window.RECOS_EXPLORER_DATA;
  // The reader's network (recos-book export-weights): the book's LeNet-5, nothing else.
  const YOURS = "yours", READER_KIND = "recos-explorer-network", READER_MAX_BYTES = 5000000;
  const LENET5 = [["conv1.weight", [6, 1, 5, 5]], ["conv1.bias", [6]], ["conv2.weight", [16, 6, 5, 5]],
    ["conv2.bias", [16]], ["fc1.weight", [120, 400]], ["fc1.bias", [120]], ["fc2.weight", [84, 120]],
    ["fc2.bias", [84]], ["fc3.weight", [10, 84]], ["fc3.bias", [10]]];
  const ACTIVATIONS = ["relu", "identity", "leaky_relu", "tanh", "sigmoid", "abs"], POOLS = ["max", "avg"];
  const EXPORT_HINT = "export your LeNet-5 with `recos-book export-weights CHECKPOINT OUT.json` and load OUT.json";

  // ------------------------------------------------------------------ decoding
  function bytes(b64) {
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function float32s(t) { return floats(bytes(t.b64)); }

  function floats(b) {             // little-endian float32 whatever the machine
    const view = new DataView(b.buffer), out = new Float32Array(Math.floor(b.length / 4));
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  const NETS = {};
  if (DATA) {
    for (const [name, net] of Object.entries(DATA.networks)) {
      const tensors = {};
      for (const [k, t] of Object.entries(net.tensors)) tensors[k] = { shape: t.shape, data: float32s(t) };
      NETS[name] = { name: name, arch: net.arch, meta: net.meta, description: net.description, t: tensors };
    }
  }
  const NAMES = Object.keys(NETS);
  const DIGITS = DATA && DATA.digits ? { n: DATA.digits.shape[0], data: bytes(DATA.digits.b64),
    labels: DATA.digits.labels } : { n: 0, data: new Uint8Array(0), labels: [] };
  const BACKGROUNDS = {};
  if (DATA) for (const [k, b] of Object.entries(DATA.backgrounds || {})) BACKGROUNDS[k] = bytes(b.b64);

  // ------------------------------------------------------------------ checks
  function need() { if (!DATA) throw new Error(MISSING); }

  function checkNetwork(name) {
    need();
    if (!Object.prototype.hasOwnProperty.call(NETS, name)) {
      throw new Error(`unknown network '${name}'; choose one of ${NAMES.join(", ")}`);
    }
    return NETS[name];
  }

  function checkPixels(p) {
    const n = p && typeof p.length === "number" ? p.length : null;
    if (n !== N_PIXELS) {
      throw new Error(`pixels must hold 784 numbers (28x28, row-major); got ${n === null ? typeof p : n}`);
    }
    const x = new Float64Array(N_PIXELS);
    for (let i = 0; i < N_PIXELS; i++) {
      const v = p[i];
      if (typeof v !== "number" || !isFinite(v)) {
        throw new Error(`pixels must be finite numbers; pixels[${i}] is ${v}`);
      }
      x[i] = v;
    }
    return x;
  }

  // ------------------------------------------------------------------ the reader's network
  const shapeText = (s) => s.join("x");

  // The JSON text of `recos-book export-weights`, checked, as a network like the book's.
  function parseNetwork(text, source) {
    const what = source ? `"${String(source).slice(0, 80)}"` : "the file";
    if (typeof text !== "string") throw new Error(`${what} must be given as text (the JSON file's contents)`);
    if (text.length > READER_MAX_BYTES) {
      throw new Error(`${what} is ${(text.length / 1e6).toFixed(1)} MB, over the limit of ` +
        `${READER_MAX_BYTES / 1e6} MB (an exported LeNet-5 is about 0.33 MB): ${EXPORT_HINT}`);
    }
    let d;
    try { d = JSON.parse(text); } catch (e) {      // (its message may quote binary bytes)
      throw new Error(`${what} is not JSON (a .pt checkpoint is not: convert it first); ${EXPORT_HINT}`);
    }
    if (!d || typeof d !== "object" || Array.isArray(d) || d.kind !== READER_KIND ||
        !d.tensors || typeof d.tensors !== "object" || !d.arch || typeof d.arch !== "object") {
      throw new Error(`${what} is JSON but not a network from recos-book export-weights ` +
        `(it needs "kind": "${READER_KIND}", "arch" and "tensors"): ${EXPORT_HINT}`);
    }
    const a = d.arch;
    if (!ACTIVATIONS.includes(a.activation) || !POOLS.includes(a.pool) ||
        typeof a.pad_value !== "number" || !isFinite(a.pad_value)) {
      throw new Error(`${what}: "arch" needs an activation among ${ACTIVATIONS.join(", ")}, a pool ` +
        `among ${POOLS.join(", ")} and a finite pad_value; got ${JSON.stringify([a.activation, a.pool, a.pad_value])}`);
    }
    const tensors = {};
    for (const [k, want] of LENET5) {
      const t = d.tensors[k];
      if (!t || typeof t !== "object") {
        throw new Error(`${what} is not the book's LeNet-5: layer ${k} (shape ${shapeText(want)}) is missing; ${EXPORT_HINT}`);
      }
      const got = Array.isArray(t.shape) ? t.shape : [];
      if (got.length !== want.length || got.some((n, i) => n !== want[i])) {
        throw new Error(`${what} is not the book's LeNet-5: layer ${k} has shape ` +
          `${shapeText(got) || String(t.shape)}, expected ${shapeText(want)}; ${EXPORT_HINT}`);
      }
      const n = want.reduce((x, y) => x * y, 1);
      if (t.dtype !== "float32" || typeof t.b64 !== "string") {
        throw new Error(`${what}: layer ${k} must be base64 float32 ("dtype": "float32", "b64"); ${EXPORT_HINT}`);
      }
      let raw;
      try { raw = bytes(t.b64); } catch (e) {
        throw new Error(`${what}: layer ${k}'s "b64" is not base64 (${e.message}); ${EXPORT_HINT}`);
      }
      if (raw.length !== 4 * n) {
        throw new Error(`${what}: layer ${k} holds ${raw.length} bytes, its shape ${shapeText(want)} ` +
          `needs ${n} float32 numbers (${4 * n} bytes); ${EXPORT_HINT}`);
      }
      const data = floats(raw);
      const bad = data.findIndex((v) => !isFinite(v));
      if (bad >= 0) throw new Error(`${what}: layer ${k} holds ${data[bad]} at ${bad}: the network has diverged`);
      tensors[k] = { shape: want.slice(), data: data };
    }
    const extra = Object.keys(d.tensors).filter((k) => !LENET5.some(([name]) => name === k));
    if (extra.length) {
      throw new Error(`${what} is not the book's plain LeNet-5: it also holds ${extra.slice(0, 4).join(", ")}; ${EXPORT_HINT}`);
    }
    const meta = d.meta && typeof d.meta === "object" ? d.meta : {};
    return { name: YOURS, t: tensors,
      arch: { pad_value: a.pad_value, activation: a.activation, pool: a.pool,
        leaky_slope: typeof a.leaky_slope === "number" && isFinite(a.leaky_slope) ? a.leaky_slope : 0.01,
        conv1_channels: 6, conv2_channels: 16, kernel: KERNEL, fc: [120, 84, 10] },
      description: `your LeNet-5 (${a.activation}, ${a.pool} pooling)`,
      meta: { network: YOURS, file: source ? String(source).slice(0, 120) : "",
        source: typeof meta.source === "string" ? meta.source.slice(0, 120) : "" } };
  }

  // ------------------------------------------------------------------ the forward pass
  function pad(x, value) {         // 28x28 -> 32x32, 2 pixels of `value` on every side
    const out = new Float64Array(PADDED * PADDED).fill(value), p = (PADDED - SIDE) / 2;
    for (let r = 0; r < SIDE; r++) for (let c = 0; c < SIDE; c++) out[(r + p) * PADDED + c + p] = x[r * SIDE + c];
    return out;
  }

  function conv(x, C, H, W, weight, bias) {      // valid 5x5 cross-correlation, like nn.Conv2d
    const O = bias.length, Ho = H - KERNEL + 1, Wo = W - KERNEL + 1;
    const out = new Float64Array(O * Ho * Wo);
    for (let o = 0; o < O; o++) {
      for (let r = 0; r < Ho; r++) for (let c = 0; c < Wo; c++) {
        let s = bias[o];
        for (let ch = 0; ch < C; ch++) {
          const w0 = (o * C + ch) * KERNEL * KERNEL, x0 = ch * H * W;
          for (let i = 0; i < KERNEL; i++) for (let j = 0; j < KERNEL; j++) {
            s += weight[w0 + i * KERNEL + j] * x[x0 + (r + i) * W + c + j];
          }
        }
        out[(o * Ho + r) * Wo + c] = s;
      }
    }
    return out;
  }

  function activate(x, arch) {
    const f = {
      relu: (v) => (v > 0 ? v : 0), identity: (v) => v, abs: Math.abs, tanh: Math.tanh,
      leaky_relu: (v) => (v > 0 ? v : arch.leaky_slope * v), sigmoid: (v) => 1 / (1 + Math.exp(-v)),
    }[arch.activation];
    return x.map(f);
  }

  function pool(x, C, H, W, kind) {              // 2x2, stride 2
    const h = H / 2, w = W / 2, out = new Float64Array(C * h * w);
    for (let ch = 0; ch < C; ch++) for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
      const i = ch * H * W + 2 * r * W + 2 * c, v = [x[i], x[i + 1], x[i + W], x[i + W + 1]];
      out[(ch * h + r) * w + c] = kind === "max" ? Math.max(...v) : (v[0] + v[1] + v[2] + v[3]) / 4;
    }
    return out;
  }

  function linear(x, weight, bias) {
    const O = bias.length, I = x.length, out = new Float64Array(O);
    for (let o = 0; o < O; o++) {
      let s = bias[o];
      for (let i = 0; i < I; i++) s += weight[o * I + i] * x[i];
      out[o] = s;
    }
    return out;
  }

  function zeroed(pre) { let n = 0; for (const v of pre) if (v <= 0) n++; return n / pre.length; }

  function softmax(z) {
    const m = Math.max(...z), e = Array.from(z, (v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  }

  function forward(x, net) {       // every stage, in LeNet5.features' order (typed arrays)
    const a = net.arch, t = net.t, K = a.conv1_channels, L = a.conv2_channels, out = { input: x };
    out.padded = pad(x, a.pad_value);
    out.conv1_pre = conv(out.padded, 1, PADDED, PADDED, t["conv1.weight"].data, t["conv1.bias"].data);
    out.conv1_post = activate(out.conv1_pre, a);
    out.pool1 = pool(out.conv1_post, K, 28, 28, a.pool);
    out.conv2_pre = conv(out.pool1, K, 14, 14, t["conv2.weight"].data, t["conv2.bias"].data);
    out.conv2_post = activate(out.conv2_pre, a);
    out.pool2 = pool(out.conv2_post, L, 10, 10, a.pool);
    out.fc1_pre = linear(out.pool2, t["fc1.weight"].data, t["fc1.bias"].data);
    out.fc1_post = activate(out.fc1_pre, a);
    out.fc2_pre = linear(out.fc1_post, t["fc2.weight"].data, t["fc2.bias"].data);
    out.fc2_post = activate(out.fc2_pre, a);
    out.logits = linear(out.fc2_post, t["fc3.weight"].data, t["fc3.bias"].data);
    out.probabilities = softmax(out.logits);
    out.prediction = out.probabilities.indexOf(Math.max(...out.probabilities));
    out.zeroed = { conv1: zeroed(out.conv1_pre), conv2: zeroed(out.conv2_pre),
      fc1: zeroed(out.fc1_pre), fc2: zeroed(out.fc2_pre) };
    out.shapes = { input: [SIDE, SIDE], padded: [PADDED, PADDED], conv1_pre: [K, 28, 28],
      conv1_post: [K, 28, 28], pool1: [K, 14, 14], conv2_pre: [L, 10, 10], conv2_post: [L, 10, 10],
      pool2: [L, 5, 5], fc1_pre: [a.fc[0]], fc1_post: [a.fc[0]], fc2_pre: [a.fc[1]], fc2_post: [a.fc[1]] };
    return out;
  }

  // Chapter 1, Sec. 1.4: y = Rec(a''.x'') = ||x''|| ||a''|| Rec(cos theta) at one location.
  function checkLocation(row, col) {
    if (!Number.isInteger(row) || !Number.isInteger(col) || row < 0 || col < 0 || row >= 28 || col >= 28) {
      throw new Error(`a conv1 location is a row and a column in 0..27; got (${row}, ${col})`);
    }
  }

  function readoutOf(f, net, row, col) {
    checkLocation(row, col);
    const patch = [];
    for (let i = 0; i < KERNEL; i++) {
      for (let j = 0; j < KERNEL; j++) patch.push(f.padded[(row + i) * PADDED + col + j]);
    }
    const xNorm = Math.sqrt(1 + patch.reduce((s, v) => s + v * v, 0));
    const w = net.t["conv1.weight"].data, b = net.t["conv1.bias"].data, n = KERNEL * KERNEL;
    const anchors = [];
    for (let k = 0; k < b.length; k++) {
      let dot = b[k], aa = b[k] * b[k];
      for (let i = 0; i < n; i++) { dot += w[k * n + i] * patch[i]; aa += w[k * n + i] * w[k * n + i]; }
      const aNorm = Math.sqrt(aa), cos = dot / (xNorm * aNorm), rec = Math.max(0, cos);
      const at = (k * 28 + row) * 28 + col;
      anchors.push({ anchor: k, a_norm: aNorm, cos: cos, rec_cos: rec, product: xNorm * aNorm * rec,
        pre: f.conv1_pre[at], response: f.conv1_post[at] });
    }
    return { row: row, col: col, patch: patch, x_norm: xNorm, anchors: anchors };
  }

  function strongest(f) {          // the location of the largest conv1 response
    let best = 0;
    for (let i = 1; i < f.conv1_post.length; i++) if (f.conv1_post[i] > f.conv1_post[best]) best = i;
    return { row: Math.floor(best / 28) % 28, col: best % 28 };
  }

  // ------------------------------------------------------------------ the public API (pure)
  const plain = (a) => Array.from(a);

  function responses(pixels, network) {
    const net = checkNetwork(network), f = forward(checkPixels(pixels), net), out = {};
    for (const [k, shape] of Object.entries(f.shapes)) out[k] = { shape: shape, data: plain(f[k]) };
    return Object.assign(out, { network: network, logits: plain(f.logits), probabilities: f.probabilities,
      prediction: f.prediction, zeroed: f.zeroed });
  }

  function weights(network) {
    const net = checkNetwork(network), out = {};
    for (const [k, t] of Object.entries(net.t)) out[k] = { shape: t.shape.slice(), data: plain(t.data) };
    return out;
  }

  // ------------------------------------------------------------------ the page's state
  const S = { network: NAMES.includes("baseline") ? "baseline" : NAMES[0], reversed: false,
    background: "", digitIndex: null, base: new Float64Array(N_PIXELS), strokes: [], hover: null };
  let ui = null, dirty = false;

  function strokeLayer() {         // the strokes, drawn at 10x and averaged down to 28x28
    const out = new Float64Array(N_PIXELS);
    if (!S.strokes.length) return out;
    const cv = document.createElement("canvas"), g = cv.getContext("2d");
    cv.width = cv.height = DRAW;
    g.fillStyle = "#000"; g.fillRect(0, 0, DRAW, DRAW);
    g.strokeStyle = g.fillStyle = "#fff"; g.lineWidth = STROKE; g.lineCap = g.lineJoin = "round";
    for (const s of S.strokes) {
      g.beginPath();
      if (s.length === 1) { g.arc(s[0][0], s[0][1], STROKE / 2, 0, 2 * Math.PI); g.fill(); continue; }
      g.moveTo(s[0][0], s[0][1]);
      for (const [x, y] of s.slice(1)) g.lineTo(x, y);
      g.stroke();
    }
    const px = g.getImageData(0, 0, DRAW, DRAW).data, k = DRAW / SIDE;
    for (let r = 0; r < DRAW; r++) for (let c = 0; c < DRAW; c++) {
      out[Math.floor(r / k) * SIDE + Math.floor(c / k)] += px[4 * (r * DRAW + c)] / 255 / (k * k);
    }
    return soften(out);
  }

  function soften(x) {             // a light 3x3 blur, so that strokes get MNIST's soft rims
    const out = new Float64Array(N_PIXELS), w = [0.25, 1, 0.25];
    for (let r = 0; r < SIDE; r++) for (let c = 0; c < SIDE; c++) {
      let s = 0, n = 0;
      for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) {
        const rr = r + i, cc = c + j, wt = w[i + 1] * w[j + 1];
        if (rr >= 0 && rr < SIDE && cc >= 0 && cc < SIDE) s += wt * x[rr * SIDE + cc];
        n += wt;
      }
      out[r * SIDE + c] = Math.min(1, 1.35 * s / n);
    }
    return out;
  }

  function digitLayer() {
    const s = strokeLayer();
    return S.base.map((v, i) => Math.max(v, s[i]));
  }

  function networkInput(digit) {
    const bg = S.background ? BACKGROUNDS[S.background] : null;
    return digit.map((v, i) => {
      const x = bg ? Math.max(v, bg[i] / 255) : v;
      return S.reversed ? 1 - x : x;
    });
  }

  function current() {
    const digit = digitLayer(), x = networkInput(digit), net = NETS[S.network], f = forward(x, net);
    const at = S.hover || strongest(f);
    return { digit: digit, f: f, net: net, readout: readoutOf(f, net, at.row, at.col) };
  }

  function state() {
    need();
    const c = current();
    return { network: S.network, reversed: S.reversed, background: S.background,
      digit_index: S.digitIndex, strokes: S.strokes.length, hover: S.hover, digit: plain(c.digit),
      input: plain(c.f.input), logits: plain(c.f.logits), probabilities: c.f.probabilities,
      prediction: c.f.prediction, zeroed: c.f.zeroed, readout: c.readout,
      yours: NETS[YOURS] ? NETS[YOURS].meta.file || "(loaded)" : null };
  }

  function changed() {             // redraw once per animation frame
    if (!ui || dirty) return;
    dirty = true;
    requestAnimationFrame(() => { dirty = false; render(); });
  }

  const actions = {
    setInput(pixels) { need(); S.base = checkPixels(pixels); S.strokes = []; S.digitIndex = null; changed(); },
    setNetwork(name) { checkNetwork(name); S.network = name; changed(); },
    setReversed(on) { need(); S.reversed = !!on; changed(); },
    setBackground(name) {
      need();
      if (name && !BACKGROUNDS[name]) {
        const names = Object.keys(BACKGROUNDS).join(", ") || "(none exported)";
        throw new Error(`unknown background '${name}'; choose one of ${names}`);
      }
      S.background = name || ""; changed();
    },
    selectDigit(i) {
      need();
      if (!Number.isInteger(i) || i < 0 || i >= DIGITS.n) {
        throw new Error(`test digit index must be in 0..${DIGITS.n - 1}; got ${i}`);
      }
      S.base = Float64Array.from(DIGITS.data.subarray(i * N_PIXELS, (i + 1) * N_PIXELS), (v) => v / 255);
      S.strokes = []; S.digitIndex = i; changed();
    },
    loadNetwork(text, source) {
      need();
      const net = parseNetwork(text, source);      // throws, changing nothing, on a bad file
      NETS[YOURS] = net;
      if (!NAMES.includes(YOURS)) NAMES.push(YOURS);
      S.network = YOURS;
      if (ui) { syncRadios(ui); ui.conv1For = ui.conv2For = null; }
      changed();
      return { network: YOURS, file: net.meta.file };
    },
    loadFile(file) {
      const say = (ok, message) => { if (ui) showUpload(ui, ok, message); return { ok: ok, message: message }; };
      const name = file && typeof file.name === "string" ? file.name : "the file";
      if (!file || typeof file.size !== "number") return Promise.resolve(say(false, "No file chosen."));
      if (file.size > READER_MAX_BYTES) {
        return Promise.resolve(say(false, `Not loaded: "${name.slice(0, 80)}" is ` +
          `${(file.size / 1e6).toFixed(1)} MB, over the limit of ${READER_MAX_BYTES / 1e6} MB (an exported ` +
          `LeNet-5 is about 0.33 MB): ${EXPORT_HINT}. The networks above are unchanged.`));
      }
      return new Promise((resolve) => {
        const reader = new FileReader();
        reader.onload = () => {
          try {
            actions.loadNetwork(reader.result, name);
            resolve(say(true, `Loaded "${name.slice(0, 80)}" as the network "yours": it runs beside the book's.`));
          } catch (e) {
            resolve(say(false, `Not loaded: ${e.message}. The networks above are unchanged.`));
          }
        };
        reader.onerror = () => resolve(say(false, `Not loaded: "${name.slice(0, 80)}" could not be read ` +
          `(${reader.error ? reader.error.message : "unknown error"}). The networks above are unchanged.`));
        reader.readAsText(file);
      });
    },
    clear() { S.base = new Float64Array(N_PIXELS); S.strokes = []; S.digitIndex = null; changed(); },
    undo() { S.strokes.pop(); changed(); },
    hover(row, col, anchor) {
      if (row === null || row === undefined) { S.hover = null; } else {
        checkLocation(row, col);
        S.hover = { row: row, col: col, anchor: Number.isInteger(anchor) ? anchor : null };
      }
      changed();
    },
  };

  // ------------------------------------------------------------------ drawing the page
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }

  function diverging(t) {          // t in [-1, 1]: blue - white - red (matplotlib's RdBu_r, roughly)
    const u = Math.min(1, Math.abs(t)), far = t < 0 ? [33, 102, 172] : [178, 24, 43];
    return far.map((f) => Math.round(247 + (f - 247) * u));
  }

  function grey(t) { const v = Math.round(255 * Math.min(1, Math.max(0, t))); return [v, v, v]; }

  // Paint an h x w map on `canvas` (scaled up, pixels kept sharp); `box`: [row, col, size].
  function paint(canvas, values, offset, h, w, colour, box) {
    const img = new ImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const [r, g, b] = colour(values[offset + i]);
      img.data.set([r, g, b, 255], 4 * i);
    }
    const small = document.createElement("canvas");
    small.width = w; small.height = h;
    small.getContext("2d").putImageData(img, 0, 0);
    const g = canvas.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.drawImage(small, 0, 0, canvas.width, canvas.height);
    if (box) {
      const sx = canvas.width / w, sy = canvas.height / h;
      g.strokeStyle = "#f0a020"; g.lineWidth = Math.max(1.5, sx / 3);
      g.strokeRect(box[1] * sx, box[0] * sy, box[2] * sx, box[2] * sy);
    }
  }

  function guide(canvas) {         // MNIST's digits fill the central 20x20 pixels
    const g = canvas.getContext("2d"), k = canvas.width / SIDE;
    g.save();
    g.setLineDash([4, 6]); g.strokeStyle = "rgba(128, 128, 128, 0.7)"; g.lineWidth = 1;
    g.strokeRect(4 * k + 0.5, 4 * k + 0.5, 20 * k, 20 * k);
    g.restore();
  }

  function maxAbs(a) { let m = 0; for (const v of a) m = Math.max(m, Math.abs(v)); return m || 1; }

  function mapCanvas(size, cells, label) {
    const cv = el("canvas", { class: "rx-map", width: String(4 * cells), height: String(4 * cells),
      style: `width:${size}px;height:${size}px`, "aria-label": label });
    return cv;
  }

  function build(root) {
    const opt = (value, text) => el("option", { value: value, text: text });
    const digitSel = el("select", { class: "rx-digit", "aria-label": "test digit" },
      [opt("", "draw your own")].concat(Array.from({ length: DIGITS.n }, (_, i) =>
        opt(String(i), `test digit ${i}` + (DIGITS.labels.length ? ` (a ${DIGITS.labels[i]})` : "")))));
    const bgSel = el("select", { class: "rx-background", "aria-label": "background" },
      [opt("", "none")].concat(Object.keys(BACKGROUNDS).map((k) => opt(k, k))));
    const netRadios = el("div", { class: "rx-networks", role: "radiogroup", "aria-label": "network" });
    const canvas = el("canvas", { class: "rx-canvas", width: String(DRAW), height: String(DRAW),
      "aria-label": "drawing canvas: draw a digit" });
    const u = {
      root: root, canvas: canvas, digitSel: digitSel, bgSel: bgSel, netRadios: netRadios,
      reverse: el("input", { type: "checkbox", class: "rx-reverse" }),
      clear: el("button", { type: "button", class: "rx-clear", text: "Clear" }),
      undo: el("button", { type: "button", class: "rx-undo", text: "Undo" }),
      meta: el("p", { class: "rx-meta" }), prediction: el("div", { class: "rx-prediction" }),
      logits: el("p", { class: "rx-logits" }),
      file: el("input", { type: "file", class: "rx-file", accept: ".json,application/json",
        "aria-label": "your network: a JSON file from recos-book export-weights" }),
      uploadMessage: el("p", { class: "rx-upload-message", role: "status", "aria-live": "polite" }),
      bars: el("div", { class: "rx-bars" }), conv1: el("div", { class: "rx-conv1" }),
      readout: el("div", { class: "rx-readout" }), conv2: el("div", { class: "rx-conv2" }),
      zeroed: el("div", { class: "rx-zeroed" }), conv1For: null, conv2For: null,
    };
    root.textContent = "";
    root.append(
      el("div", { class: "rx-top" }, [
        el("div", { class: "rx-input" }, [
          canvas,
          el("div", { class: "rx-row" }, [u.clear, u.undo, digitSel]),
        ]),
        el("div", { class: "rx-side" }, [
          el("div", { class: "rx-controls" }, [
            el("div", { class: "rx-control" }, [el("span", { class: "rx-label", text: "network" }), netRadios]),
            el("label", { class: "rx-control" }, [u.reverse, " reverse grey levels (x \u2192 1 \u2212 x)"]),
            el("label", { class: "rx-control" }, [el("span", { class: "rx-label", text: "background" }), bgSel]),
          ]),
          u.prediction, u.bars, u.logits, u.meta,
        ]),
      ]),
      el("div", { class: "rx-yours" }, [
        el("label", { class: "rx-file-label" }, [el("strong", { text: "Your network: " }),
          "load a LeNet-5 exported with ", el("code", { text: "recos-book export-weights" }), " ", u.file]),
        u.uploadMessage,
      ]),
      el("h3", { text: "conv1: anchors and responses" }),
      el("p", { class: "rx-note", text: "Each column: an anchor a\u2096 (5x5; red positive, blue negative), " +
        "its response a\u2096\u00b7x + b\u2096 at every place before the rectifier and after it " +
        "(black: zero). Hover over or tap a map to read one place." }),
      u.conv1, u.readout,
      el("h3", { text: "conv2: responses before and after the rectifier" }), u.conv2,
      el("h3", { text: "What each rectifier sets to zero" }), u.zeroed);

    for (let d = 0; d < 10; d++) {
      u.bars.append(el("div", { class: "rx-bar", "data-class": String(d) }, [
        el("span", { class: "rx-bar-label", text: String(d) }),
        el("span", { class: "rx-bar-track" }, [el("span", { class: "rx-bar-fill" })]),
        el("span", { class: "rx-bar-value" })]));
    }
    syncRadios(u);
    wire(u);
    return u;
  }

  function syncRadios(u) {         // one radio per network (the reader's joins when loaded)
    u.netRadios.textContent = "";
    for (const n of NAMES) {
      u.netRadios.append(el("label", { title: NETS[n].description }, [
        el("input", { type: "radio", name: "rx-network", value: n }), el("span", { text: n })]));
    }
  }

  function showUpload(u, ok, message) {
    u.uploadMessage.textContent = message;
    u.uploadMessage.classList.toggle("rx-error", !ok);
    u.uploadMessage.classList.toggle("rx-ok", ok);
  }

  function wire(u) {
    const at = (e) => {
      const r = u.canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * DRAW / r.width, (e.clientY - r.top) * DRAW / r.height];
    };
    let drawing = null;
    u.canvas.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      try { u.canvas.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer */ }
      drawing = e.pointerId;
      S.strokes.push([at(e)]);
      changed();
    });
    u.canvas.addEventListener("pointermove", (e) => {
      if (drawing !== e.pointerId) return;
      S.strokes[S.strokes.length - 1].push(at(e));
      changed();
    });
    const stop = (e) => { if (drawing === e.pointerId) drawing = null; };
    u.canvas.addEventListener("pointerup", stop);
    u.canvas.addEventListener("pointercancel", stop);
    u.clear.addEventListener("click", () => actions.clear());
    u.undo.addEventListener("click", () => actions.undo());
    u.digitSel.addEventListener("change", () => (u.digitSel.value === "" ? actions.clear()
      : actions.selectDigit(Number(u.digitSel.value))));
    u.bgSel.addEventListener("change", () => actions.setBackground(u.bgSel.value));
    u.reverse.addEventListener("change", () => actions.setReversed(u.reverse.checked));
    u.netRadios.addEventListener("change", (e) => actions.setNetwork(e.target.value));
    u.file.addEventListener("change", () => {
      const f = u.file.files && u.file.files[0];
      if (f) actions.loadFile(f).then(() => { u.file.value = ""; });
    });
  }

  function onMap(cv, cells, k) {   // hovering or tapping a conv1 map moves the readout
    const move = (e) => {
      const r = cv.getBoundingClientRect();
      const row = Math.min(cells - 1, Math.max(0, Math.floor((e.clientY - r.top) / r.height * cells)));
      const col = Math.min(cells - 1, Math.max(0, Math.floor((e.clientX - r.left) / r.width * cells)));
      const h = S.hover;
      if (!h || h.row !== row || h.col !== col || h.anchor !== k) actions.hover(row, col, k);
    };
    cv.addEventListener("pointermove", move);
    cv.addEventListener("pointerdown", move);
  }

  // A grid of maps: a title per column, then per row a label and one map per column.
  // rows: [{key, label, size (CSS px), cells (map side)}]; returns the canvases per column.
  function mapGrid(container, titles, rows, first) {
    const grid = el("div", { class: "rx-grid",
      style: `grid-template-columns: auto repeat(${titles.length}, auto)` });
    grid.append(el("span"), ...titles.map((t) => el("span", { class: "rx-map-title", text: t })));
    const columns = titles.map(() => ({}));
    for (const r of rows) {
      grid.append(el("span", { class: "rx-row-label", text: r.label }));
      titles.forEach((t, i) => {
        const cv = mapCanvas(r.size, r.cells, `${t}: ${r.label}`);
        cv.classList.add(`rx-map-${r.key}`);
        cv.dataset.index = String(first + i);
        columns[i][r.key] = cv;
        grid.append(cv);
      });
    }
    container.append(grid);
    return columns;
  }

  const anchorName = (k, K) => (K > 8 ? (k < K / 2 ? `a${k + 1}` : `\u2212a${k + 1 - K / 2}`) : `a${k + 1}`);

  function buildConv1(u, net) {    // a column per anchor: the anchor, its map before and after
    u.conv1.textContent = "";
    u.conv1Cells = [];
    const K = net.arch.conv1_channels, group = K > 8 ? K / 2 : K;   // paired: anchors, then twins
    for (let first = 0; first < K; first += group) {
      if (first > 0) {
        u.conv1.append(el("p", { class: "rx-note", text: "Their twins \u2212a\u2096, bias " +
          "b\u2096 + \u03a3a\u2096 (Sec. 2.6): reversing the input swaps each map with its twin's." }));
      }
      const titles = Array.from({ length: group }, (_, i) => anchorName(first + i, K));
      const cols = mapGrid(u.conv1, titles, [{ key: "anchor", label: "anchor", size: 40, cells: 5 },
        { key: "pre", label: "before ReLU", size: 80, cells: 28 },
        { key: "post", label: "after ReLU", size: 80, cells: 28 }], first);
      cols.forEach((c, i) => { onMap(c.pre, 28, first + i); onMap(c.post, 28, first + i); });
      u.conv1Cells.push(...cols);
    }
    u.conv1For = net.name;
  }

  function buildConv2(u, net) {    // 16 maps of 10x10, in two rows of 8
    u.conv2.textContent = "";
    u.conv2Cells = [];
    const L = net.arch.conv2_channels, group = L > 8 ? Math.ceil(L / 2) : L;
    for (let first = 0; first < L; first += group) {
      const titles = Array.from({ length: Math.min(group, L - first) }, (_, i) => String(first + i + 1));
      u.conv2Cells.push(...mapGrid(u.conv2, titles, [{ key: "pre", label: "before ReLU", size: 60, cells: 10 },
        { key: "post", label: "after ReLU", size: 60, cells: 10 }], first));
    }
    u.conv2For = net.name;
  }

  const pct = (v, d) => `${(100 * v).toFixed(d === undefined ? 1 : d)}%`;
  const fmt = (v) => v.toFixed(4);

  function metaText(net) {
    const m = net.meta, acc = m.accuracy;
    if (net.name === YOURS) {
      return `These weights are yours: ${m.file ? `"${m.file}"` : "a file"}` +
        (m.source ? `, exported from ${m.source}` : "") + ` by recos-book export-weights; ${net.description}, ` +
        `padding ${net.arch.pad_value}.`;
    }
    let s = `These weights are ${m.chapter}'s ${net.name} network, seed ${m.seed}, ${m.mode} mode` +
      ` (${m.dataset}${m.n_train ? `, ${m.n_train.toLocaleString("en")} training images` : ""}): ${net.description}.`;
    if (acc) {
      const parts = [];
      if (acc.original !== undefined) parts.push(`${pct(acc.original, 2)} on original test digits`);
      if (acc.reversed !== undefined) parts.push(`${pct(acc.reversed, 2)} on reversed ones`);
      s += ` Test accuracy: ${parts.join(", ")}.`;
    }
    return s;
  }

  function renderReadout(u, r, hovered) {
    const head = ["anchor", "\u2016a\u2033\u2016", "cos \u03b8", "Rec(cos \u03b8)",
      "\u2016x\u2033\u2016 \u2016a\u2033\u2016 Rec(cos \u03b8)", "response y (after ReLU)"];
    const K = r.anchors.length;
    const rows = r.anchors.map((a) => el("tr", { "data-anchor": String(a.anchor), "data-product": String(a.product),
      "data-response": String(a.response), class: (a.rec_cos > 0 ? "rx-on" : "rx-off") +
        (S.hover && S.hover.anchor === a.anchor ? " rx-hovered" : "") }, [
      el("td", { text: anchorName(a.anchor, K) }),
      el("td", { text: fmt(a.a_norm) }), el("td", { text: fmt(a.cos) }), el("td", { text: fmt(a.rec_cos) }),
      el("td", { text: fmt(a.product) }), el("td", { text: fmt(a.response) })]));
    u.readout.textContent = "";
    u.readout.append(
      el("p", {}, [`At row ${r.row}, column ${r.col} `, el("span", { class: "rx-note",
        text: hovered ? "(the orange box: the 5x5 patch x)" : "(the strongest response; hover over a map to move)" }),
      `: x\u2033 = (1, x), a\u2033 = (b, a) (Chapter 1, Sec. 1.4), \u2016x\u2033\u2016 = `,
      el("strong", { class: "rx-xnorm", "data-value": String(r.x_norm), text: fmt(r.x_norm) }),
      ". Response = magnitude \u00d7 rectified cosine: the last two columns agree."]),
      el("div", { class: "rx-table-wrap" }, [el("table", { class: "rx-table" }, [
        el("thead", {}, [el("tr", {}, head.map((h) => el("th", { text: h })))]), el("tbody", {}, rows)])]));
  }

  function render() {
    if (!ui) return;
    const u = ui, c = current(), f = c.f, net = c.net, box = [c.readout.row - 2, c.readout.col - 2, 5];
    // the input, as the network sees it, with the readout's patch
    paint(u.canvas, f.input, 0, SIDE, SIDE, grey, box);
    guide(u.canvas);
    u.digitSel.value = S.digitIndex === null ? "" : String(S.digitIndex);
    u.bgSel.value = S.background;
    u.reverse.checked = S.reversed;
    for (const r of u.netRadios.querySelectorAll("input")) r.checked = r.value === S.network;
    u.meta.textContent = metaText(net);
    // the prediction
    u.prediction.textContent = "";
    u.prediction.append("prediction ", el("strong", { class: "rx-predicted", text: String(f.prediction) }),
      ` (${pct(f.probabilities[f.prediction])})`);
    u.logits.textContent = "";
    u.logits.append(el("span", { class: "rx-label", text: "logits" }), ...Array.from(f.logits, (v, d) =>
      el("span", { class: "rx-logit", "data-class": String(d), "data-value": String(v), text: `${d}: ${v.toFixed(3)}` })));
    u.bars.querySelectorAll(".rx-bar").forEach((b, d) => {
      b.classList.toggle("rx-top-class", d === f.prediction);
      b.querySelector(".rx-bar-fill").style.width = pct(f.probabilities[d], 2);
      b.querySelector(".rx-bar-value").textContent = pct(f.probabilities[d]);
    });
    // conv1
    if (u.conv1For !== net.name) buildConv1(u, net);
    // one colour scale per layer: |pre| for the maps before the rectifier, max after it
    const s1 = maxAbs(f.conv1_pre), p1 = maxAbs(f.conv1_post), w = net.t["conv1.weight"].data;
    const mark = [c.readout.row, c.readout.col, 1];
    u.conv1Cells.forEach((cells, k) => {
      const a = w.subarray(25 * k, 25 * (k + 1)), sa = maxAbs(a);
      paint(cells.anchor, a, 0, 5, 5, (v) => diverging(v / sa));
      paint(cells.pre, f.conv1_pre, k * 784, 28, 28, (v) => diverging(v / s1), mark);
      paint(cells.post, f.conv1_post, k * 784, 28, 28, (v) => grey(v / p1), mark);
    });
    renderReadout(u, c.readout, !!S.hover);
    // conv2
    if (u.conv2For !== net.name) buildConv2(u, net);
    const s2 = maxAbs(f.conv2_pre), p2 = maxAbs(f.conv2_post);
    u.conv2Cells.forEach((cells, l) => {
      paint(cells.pre, f.conv2_pre, l * 100, 10, 10, (v) => diverging(v / s2));
      paint(cells.post, f.conv2_post, l * 100, 10, 10, (v) => grey(v / p2));
    });
    // zeroed shares
    u.zeroed.textContent = "";
    const layers = [["conv1", "conv1 (C1)"], ["conv2", "conv2 (C3)"], ["fc1", "fc1 (C5)"], ["fc2", "fc2 (F6)"]];
    for (const [k, name] of layers) {
      u.zeroed.append(el("div", { class: "rx-bar", "data-layer": k, "data-value": String(f.zeroed[k]) }, [
        el("span", { class: "rx-bar-label rx-wide", text: name }),
        el("span", { class: "rx-bar-track" }, [
          el("span", { class: "rx-bar-fill", style: `width:${pct(f.zeroed[k], 2)}` })]),
        el("span", { class: "rx-bar-value", text: pct(f.zeroed[k]) })]));
    }
  }

  // ------------------------------------------------------------------ start
  window.recosExplorer = Object.assign({
    ready: !!DATA, error: DATA ? null : MISSING,
    logits: (pixels, network) => plain(forward(checkPixels(pixels), checkNetwork(network)).logits),
    responses: responses, weights: weights,
    readout(pixels, network, row, col) {
      const net = checkNetwork(network);
      return readoutOf(forward(checkPixels(pixels), net), net, row, col);
    },
    networks: () => NAMES.slice(),
    meta: (network) => Object.assign({}, checkNetwork(network).meta),
    state: state, update: () => { dirty = false; render(); },
  }, actions);

  function start() {
    const root = document.getElementById("recos-explorer");
    if (!root) return;
    if (!DATA) {
      root.textContent = "";
      root.append(el("p", { class: "rx-message rx-missing", text: MISSING }));
      return;
    }
    ui = build(root);
    render();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
