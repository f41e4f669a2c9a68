// raas live dashboard: one EventSource on /events (falls back to polling /status.json), and
// the DOM updated in place. No framework; everything shown comes from the status JSON.
"use strict";

const $ = (id) => document.getElementById(id);
function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(1);
  return String(v);
}
const thumbSeq = {};

function setText(id, value) {
  const el = $(id);
  if (el && el.textContent !== fmt(value)) el.textContent = fmt(value);
}

function rows(tbody, entries, cells) {
  // Rebuild only when the set of keys changes; otherwise update the cells.
  const keys = entries.map(([k]) => k).join("\n");
  if (tbody.dataset.keys !== keys) {
    tbody.replaceChildren(
      ...entries.map(([k]) => {
        const tr = document.createElement("tr");
        tr.dataset.key = k;
        const th = document.createElement("th");
        th.textContent = k;
        tr.append(th);
        for (let i = 0; i < cells(entries[0][1]).length; i++) tr.append(document.createElement("td"));
        return tr;
      }),
    );
    tbody.dataset.keys = keys;
  }
  entries.forEach(([, v], i) => {
    const tds = tbody.children[i].querySelectorAll("td");
    cells(v).forEach((c, j) => {
      if (tds[j].textContent !== fmt(c)) tds[j].textContent = fmt(c);
    });
  });
}

function devices(flat) {
  // "hand.link_rtt_p50_us" -> one row per counter, one column per device
  const names = [];
  const stats = {};
  for (const [key, value] of Object.entries(flat)) {
    const dot = key.indexOf(".");
    const dev = key.slice(0, dot);
    const stat = key.slice(dot + 1);
    if (!names.includes(dev)) names.push(dev);
    (stats[stat] = stats[stat] || {})[dev] = value;
  }
  $("no-devices").hidden = names.length > 0;
  const head = $("device-names");
  if (head.dataset.names !== names.join(",")) {
    head.replaceChildren(
      ...["counter", ...names].map((n) => {
        const th = document.createElement("th");
        th.textContent = n;
        return th;
      }),
    );
    head.dataset.names = names.join(",");
  }
  const entries = Object.entries(stats).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length) rows($("devices"), entries, (v) => names.map((n) => v[n]));
}

function cameras(seqs) {
  const box = $("cameras");
  const names = Object.keys(seqs);
  $("no-cameras").hidden = names.length > 0;
  for (const name of names) {
    let fig = box.querySelector(`figure[data-camera="${name}"]`);
    if (!fig) {
      fig = document.createElement("figure");
      fig.dataset.camera = name;
      const img = document.createElement("img");
      img.alt = `camera ${name}`;
      img.dataset.testid = "thumbnail";
      const cap = document.createElement("figcaption");
      cap.textContent = name;
      fig.append(img, cap);
      box.append(fig);
    }
    const seq = seqs[name];
    if (seq > 0 && thumbSeq[name] !== seq) {
      thumbSeq[name] = seq;
      const img = fig.querySelector("img");
      img.src = `/cameras/${encodeURIComponent(name)}.png?seq=${seq}`;
      img.dataset.seq = String(seq);
    }
  }
}

function render(s) {
  setText("robot", s.robot);
  const st = $("state");
  setText("state", s.state);
  st.className = `big state state-${s.state.toLowerCase()}`;
  setText("board-age", s.board_age_s.toFixed(1));
  setText("cycle", s.cycle);
  setText("cycles", s.cycles);
  setText("loops", s.loops);
  setText("rate", s.rate_hz.toFixed(1));
  setText("rate-config", s.rate_config_hz);
  setText("lease", s.lease_holder || "nobody");
  setText("episode", s.episode);
  setText("missed", s.missed);
  setText("overruns", s.overruns);
  setText("fallbacks", `${s.fallbacks.repeat} / ${s.fallbacks.idle}`);
  setText("clipped", s.clipped);
  setText("apply-late", s.apply_late);
  for (const key of ["lateness", "trigger_to_apply", "decide"]) {
    const p = s[`${key}_us`];
    const tds = $(`pct-${key}`).querySelectorAll("td");
    [p.n, p.p50, p.p99, p.p999, p.max].forEach((v, i) => {
      if (tds[i].textContent !== fmt(v)) tds[i].textContent = fmt(v);
    });
  }
  rows($("sources"), Object.entries(s.sources), (v) => [v.stale ? "yes" : "no", v.stale_cycles, v.age_us]);
  devices(s.devices);
  cameras(s.cameras);
}

function connected(how) {
  setText("conn", how);
  $("conn").className = "conn ok";
}

function poll() {
  fetch("/status.json", { cache: "no-store" })
    .then((r) => r.json())
    .then((s) => { render(s); connected("live (polling)"); })
    .catch(() => { setText("conn", "disconnected"); $("conn").className = "conn bad"; })
    .finally(() => setTimeout(poll, 1000));
}

if ("EventSource" in window) {
  const es = new EventSource("/events");
  es.onmessage = (ev) => { render(JSON.parse(ev.data)); connected("live"); };
  es.onerror = () => { setText("conn", "reconnecting…"); $("conn").className = "conn bad"; };
} else {
  poll();
}
