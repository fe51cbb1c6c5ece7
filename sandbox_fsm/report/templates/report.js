"use strict";
// Draws what the log says (embedded JSON): a Gantt chart per sandbox with zoom, grouping
// and idle-gap compression, and the state + ledger at a picked position (replaying the
// ledger changes the Python fold computed). No network, no library.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const LABEL_W = 250, ROW_H = 26, AXIS_H = 44, GAP = 1e6, GAP_W = 5e4, BUFFER = 400;

  function el(tag, attrs, parent, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function tip(e, text) { el("title", {}, e, text); return e; }
  function ms(us) { return (us / 1000).toFixed(us < 10000 ? 2 : 1) + " ms"; }
  function span(us) {
    const s = us / 1e6;
    if (s < 1) return ms(us);
    if (s < 120) return s.toFixed(2) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function last(sorted, v, key) {   // index of the last item with key(item) <= v, or -1
    let lo = 0, hi = sorted.length - 1, ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (key(sorted[mid]) <= v) { ans = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return ans;
  }

  // Idle gaps longer than GAP between operations are drawn GAP_W wide.
  function breaksOf(d) {
    const spans = d.ops.map(o => [o.s, o.e]).concat(d.facts.map(f => [f.t, f.t]));
    spans.sort((a, b) => a[0] - b[0]);
    const out = [];
    let end = spans.length ? spans[0][1] : 0, shift = 0;
    for (const [s, e] of spans) {
      if (s - end > GAP) {
        out.push({ at: end, gap: s - end, c: end - shift });
        shift += s - end - GAP_W;
      }
      end = Math.max(end, e);
    }
    return out;
  }

  class Gantt {
    constructor(section) {
      this.sec = section;
      this.d = JSON.parse(section.querySelector(".sbx-data").textContent);
      this.axis = section.querySelector("svg.axis");
      this.box = section.querySelector(".rows");
      this.chart = section.querySelector("svg.chart");
      this.at = section.querySelector(".at");
      this.range = section.querySelector(".pos-range");
      this.input = section.querySelector(".pos-input");
      this.opt = k => section.querySelector(".opt-" + k).checked;
      this.brk = breaksOf(this.d);
      if (this.d.ops.length > 60) section.querySelector(".opt-group").checked = true;
      this.picked = this.d.events.p.length - 1;
      this.fit();
      this.wire();
      this.show(this.picked);
    }
    toC(t) {
      if (!this.opt("compact")) return t;
      const i = last(this.brk, t, b => b.at);
      if (i < 0) return t;
      const b = this.brk[i];
      if (t < b.at + b.gap) return b.c + (t - b.at) / b.gap * GAP_W;
      return b.c + GAP_W + (t - b.at - b.gap);
    }
    fit() {
      const t = this.d.events.t;
      this.c0 = this.toC(t[0]);
      this.c1 = Math.max(this.toC(t[t.length - 1]), this.c0 + 1000);
      const pad = (this.c1 - this.c0) * 0.02;
      this.c0 -= pad; this.c1 += pad;
    }
    width() { return Math.max(this.box.clientWidth, 700); }
    x(t) { return LABEL_W + (this.toC(t) - this.c0) / (this.c1 - this.c0) * (this.width() - LABEL_W - 12); }
    cAt(px) { return this.c0 + (px - LABEL_W) / (this.width() - LABEL_W - 12) * (this.c1 - this.c0); }
    rows() {
      const ops = this.d.ops.filter(o => !this.opt("failures") || o.status !== "completed"
        || o.recovery || o.steps.some(s => s.status !== "ok"));
      if (!this.opt("group")) return ops.map(o => ({ label: "#" + o.seq + " " + o.label, ops: [o] }));
      // Runs of successful operations of at most two kinds (stats, pause/resume, ...) share a row.
      const rows = [];
      for (const o of ops) {
        const plain = o.status === "completed" && !o.recovery;
        const prev = rows[rows.length - 1];
        if (plain && prev && prev.plain && (prev.names.has(o.label) || prev.names.size < 2)) {
          prev.names.add(o.label); prev.ops.push(o); continue;
        }
        rows.push({ names: new Set([o.label]), plain: plain, ops: [o] });
      }
      for (const r of rows) {
        r.label = "#" + r.ops[0].seq + (r.ops.length > 1 ? " ×" + r.ops.length : "") + " " + [...r.names].join(" / ");
      }
      return rows;
    }
    zoom(factor, px) {
      const c = px === undefined ? (this.c0 + this.c1) / 2 : this.cAt(px);
      const w = Math.max((this.c1 - this.c0) * factor, 20);
      const f = (c - this.c0) / (this.c1 - this.c0);
      this.c0 = c - f * w; this.c1 = this.c0 + w;
      this.reveal();
      this.draw();
    }
    reveal() {   // scroll to the first row with something in the window, if none shows
      const rows = this.rows(), top = Math.floor(this.box.scrollTop / ROW_H);
      const shown = r => r.ops.some(o => this.toC(o.e) >= this.c0 && this.toC(o.s) <= this.c1);
      const seen = rows.slice(top, top + Math.ceil(this.box.clientHeight / ROW_H));
      if (seen.some(shown)) return;
      const i = rows.findIndex(shown);
      if (i >= 0) this.box.scrollTop = i * ROW_H;
    }
    wire() {
      this.sec.querySelectorAll(".toolbar button").forEach(b => b.addEventListener("click", () => {
        const a = b.dataset.act;
        if (a === "fit") { this.fit(); this.draw(); } else this.zoom(a === "in" ? 0.5 : 2);
      }));
      this.sec.querySelectorAll(".toolbar input").forEach(i => i.addEventListener("change", () => {
        this.brk = breaksOf(this.d); this.fit(); this.draw();
      }));
      this.box.addEventListener("wheel", e => {
        if (!e.ctrlKey) return;
        e.preventDefault();
        this.zoom(e.deltaY > 0 ? 1.25 : 0.8, e.offsetX);
      }, { passive: false });
      let drag = null;
      this.box.addEventListener("mousedown", e => { drag = { x: e.clientX, c0: this.c0, moved: false }; });
      window.addEventListener("mousemove", e => {
        if (!drag) return;
        const dx = e.clientX - drag.x;
        if (Math.abs(dx) > 3) drag.moved = true;
        if (!drag.moved) return;
        const w = this.c1 - this.c0, per = w / (this.width() - LABEL_W - 12);
        this.c0 = drag.c0 - dx * per; this.c1 = this.c0 + w; this.draw();
      });
      window.addEventListener("mouseup", e => {
        const was = drag; drag = null;
        if (!was || was.moved || e.target.closest(".rows") !== this.box) return;
        const tgt = e.target;
        if (tgt.dataset && tgt.dataset.op !== undefined) { this.zoomTo(this.d.ops[+tgt.dataset.op]); return; }
        if (tgt.dataset && tgt.dataset.ep !== undefined) { this.pickPosition(+tgt.dataset.ep); return; }
        if (e.offsetX > LABEL_W) this.pickTime(this.cAt(e.offsetX));
      });
      this.box.addEventListener("scroll", () => requestAnimationFrame(() => this.drawRows()));
      window.addEventListener("resize", () => this.draw());
      this.range.addEventListener("input", () => this.show(+this.range.value));
      this.input.addEventListener("change", () => this.pickPosition(+this.input.value));
    }
    zoomTo(o) {
      const w = Math.max(this.toC(o.e) - this.toC(o.s), 200);
      this.c0 = this.toC(o.s) - w * 0.1; this.c1 = this.toC(o.e) + w * 0.1; this.draw();
    }
    pickPosition(p) { this.show(Math.max(0, last(this.d.events.p, p, v => v))); }
    pickTime(c) {
      this.show(Math.max(0, last(this.d.events.t, c, v => this.toC(v))));
    }
    draw() { this.drawAxis(); this.drawRows(); }
    drawAxis() {
      const W = this.width(), a = this.axis;
      a.replaceChildren(); a.setAttribute("height", AXIS_H); a.setAttribute("viewBox", `0 0 ${W} ${AXIS_H}`);
      el("text", { x: 6, y: 14 }, a, "operation (click: zoom)");
      el("text", { x: 6, y: 36 }, a, "exits, OOMs, lost");
      const span0 = this.c1 - this.c0, raw = span0 / 8, mag = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
      for (let c = Math.ceil(this.c0 / step) * step; c <= this.c1; c += step) {
        const px = LABEL_W + (c - this.c0) / span0 * (W - LABEL_W - 12);
        const g = el("g", { class: "tick" }, a);
        el("line", { x1: px, x2: px, y1: 16, y2: AXIS_H }, g);
        el("text", { x: px + 2, y: 12 }, g, "+" + span(c));
      }
      for (const b of this.opt("compact") ? this.brk : []) {
        const px = this.x(b.at);
        el("line", { class: "brk", x1: px, x2: px, y1: 0, y2: AXIS_H }, a);
        el("text", { class: "brk-label", x: px + 3, y: 24 }, a, "idle " + span(b.gap));
      }
      for (const f of this.d.facts) {
        const px = this.x(f.t);
        if (px < LABEL_W || px > W) continue;
        tip(el("path", { class: "fact " + f.kind, d: `M${px},24 l5,6 l-5,6 l-5,-6 z`, "data-ep": f.p }, a),
          `${f.type} at position ${f.p}: ${f.text}`);
      }
      this.cursor(a, 0, AXIS_H);
    }
    cursor(svg, y0, y1) {
      const px = this.x(this.d.events.t[this.picked]);
      if (px >= LABEL_W) el("line", { class: "cursor", x1: px, x2: px, y1: y0, y2: y1 }, svg);
    }
    drawRows() {
      const rows = this.rows(), W = this.width(), H = rows.length * ROW_H + 4, c = this.chart;
      c.replaceChildren(); c.setAttribute("height", H); c.setAttribute("viewBox", `0 0 ${W} ${H}`);
      const top = this.box.scrollTop - BUFFER, bottom = this.box.scrollTop + this.box.clientHeight + BUFFER;
      rows.forEach((r, i) => {
        const y = i * ROW_H;
        if (y + ROW_H < top || y > bottom) return;
        el("rect", { class: "rowbg" + (i % 2 ? " odd" : ""), x: 0, y: y, width: W, height: ROW_H }, c);
        const o0 = r.ops[0], st = o0.status + (r.ops.some(o => o.recovery) ? " recovery" : "");
        tip(el("text", { class: "label " + st, x: 6, y: y + 17, "data-op": o0.seq }, c, r.label.length > 40 ? r.label.slice(0, 39) + "…" : r.label),
          `${r.label}: ${o0.from} -> ${o0.to}, ${o0.status}${o0.state ? " (" + o0.state + ")" : ""}`);
        // In a group, an operation that would land on pixels already drawn is skipped.
        let painted = -Infinity;
        for (const o of r.ops) {
          if (r.ops.length > 1 && this.x(o.e) < painted + 1) continue;
          this.drawOp(c, o, y, W);
          painted = Math.max(this.x(o.e), this.x(o.s) + 2);
        }
      });
      this.cursor(c, 0, H);
    }
    drawOp(c, o, y, W) {
      const x0 = this.x(o.s), x1 = this.x(o.e);
      if (x1 < LABEL_W || x0 > W) return;
      const cls = "bar op " + o.status + (o.recovery ? " recovery" : "");
      tip(el("rect", { class: cls, x: Math.max(x0, LABEL_W), y: y + 3, width: Math.max(x1 - Math.max(x0, LABEL_W), 2),
        height: 5, "data-seq": o.seq, "data-ep": o.ep }, c),
        `#${o.seq} ${o.label} (${o.trigger}: ${o.from} -> ${o.to}) ${o.status} in ${ms(o.e - o.s)}, positions ${o.sp}-${o.ep}` +
        (o.error ? "\n" + o.error : ""));
      for (const s of o.steps) {
        const a = this.x(s.s), b = this.x(s.e);
        if (b < LABEL_W || a > W) continue;
        const left = Math.max(a, LABEL_W), cls2 = "bar " + (s.kind === "step" ? "step" : "comp") + " " + s.status +
          (s.recovery ? " recovery" : "");
        tip(el("rect", { class: cls2, x: left, y: y + 10, width: Math.max(b - left, 1.5), height: 12,
          "data-step": s.step, "data-status": s.status, "data-ep": s.ep }, c),
          `${s.kind === "step" ? "step" : "compensation of"} ${s.step} (#${s.index}): ${s.status}, ${ms(s.e - s.s)}, ` +
          `positions ${s.sp}-${s.ep}${s.error ? "\n" + s.error : ""}`);
        if (s.error && s.status !== "indoubt") this.errorText(c, o, s, y, W);
      }
    }
    errorText(c, o, s, y, W) {   // beside the operation, on the side with more room
      const after = Math.max(this.x(o.e), LABEL_W) + 4, before = Math.max(this.x(o.s), LABEL_W) - 4;
      const right = W - 12 - after >= before - LABEL_W - 4, room = right ? W - 12 - after : before - LABEL_W - 4;
      const chars = Math.floor(room / 6.6), text = "✖ " + s.step + ": " + s.error;
      if (chars < 12) return;
      tip(el("text", { class: "errtext", x: right ? after : before, y: y + 20, "text-anchor": right ? "start" : "end",
        "data-ep": s.ep }, c, text.length > chars ? text.slice(0, chars - 1) + "…" : text), s.error);
    }
    show(i) {
      const ev = this.d.events, p = ev.p[i];
      this.picked = i; this.range.value = i; this.input.value = p;
      const held = new Map(), led = this.d.ledger;
      for (let k = 0; k < led.length && led[k][0] <= p; k++) {
        for (const key of led[k][2]) held.delete(key);
        for (const id of led[k][1]) held.set(this.d.entries[id].key, this.d.entries[id]);
      }
      const sts = this.d.status, st = sts[last(sts, p, s => s[0])][1];
      this.at.dataset.position = p;
      this.at.replaceChildren();
      const head = document.createElement("p");
      head.textContent = `At position ${p} (${ev.type[i]}, ${new Date(this.d.t0ms + ev.t[i] / 1000).toISOString()}): ` +
        `sandbox ${st.state}${st.lost ? " LOST" : ""}` + (st.operation ? `; operation in progress: ${st.operation}` : "") +
        Object.entries(st.containers).map(([k, v]) => `; container ${k}: ${v}`).join("");
      this.at.appendChild(head);
      const tbl = document.createElement("table");
      tbl.className = "ledger";
      tbl.insertRow().innerHTML = "<th>key</th><th>kind</th><th>detail</th>";
      for (const key of [...held.keys()].sort()) {
        const r = held.get(key), row = tbl.insertRow();
        row.dataset.key = key;
        for (const text of [key, r.kind, Object.entries(r.detail).map(([k, v]) => k + "=" + v).join(" ")]) {
          row.insertCell().textContent = text;
        }
      }
      const cap = document.createElement("p");
      cap.textContent = held.size ? `resource ledger (${held.size}):` : "resource ledger: empty";
      this.at.appendChild(cap);
      if (held.size) this.at.appendChild(tbl);
      this.draw();
    }
  }
  window.sbxReport = [...document.querySelectorAll("section.sandbox")].map(s => new Gantt(s));
})();
