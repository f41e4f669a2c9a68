// The booking page's week calendar: one robot, Monday to Sunday in the browser's time zone.
// It only talks to the service's JSON API with the login cookie (same origin):
//   GET  /robots/{id}/availability   busy intervals of everyone (bookings, maintenance, job holds)
//   GET  /reservations               your bookings (staff: everyone's), for their ids
//   GET  /maintenance                maintenance blocks, for their reasons
//   POST /reservations, POST /reservations/{id}/cancel, POST /maintenance (staff)
//   GET  /robots/{id}                live status, polled
//   GET  /users                      (staff) names for everyone's bookings
// Events are placed by wall-clock time, so on a daylight-saving day 03:00 still sits at 03:00.
"use strict";

(() => {
  const root = document.getElementById("booking");
  if (!root) return;
  const robotId = Number(root.dataset.robotId);
  const staff = root.dataset.staff === "true";
  const pollMs = Number(root.dataset.pollMs) || 5000;
  const HOUR_PX = 28;
  const DAY_MS = 86400000;
  const grid = document.getElementById("grid");
  const message = document.getElementById("message");

  // ---- time helpers (local wall clock) ----
  const T = window.raasTime; // the page's one time format (session.js)
  const pad = T.pad;
  const startOfDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
  const mondayOf = (d) => addDays(startOfDay(d), -((d.getDay() + 6) % 7));
  const localInput = (d) =>
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const hhmm = T.hhmm;
  const dayName = T.dayName;

  function parseWeek(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    return m ? mondayOf(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : mondayOf(new Date());
  }

  let weekStart = parseWeek(root.dataset.week);
  let loading = 0;
  let scrollToHour = true; // on opening and on changing weeks: show the current hour (else 08:00)
  const names = new Map(); // user id -> name (staff only: GET /users)

  // ---- API ----
  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new Error("signed out");
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      throw new Error(detail || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  function say(text, kind = "error") {
    message.textContent = text;
    message.className = `message ${text ? kind : ""}`;
  }

  // ---- rendering ----
  function skeleton() {
    const keep = grid.scrollTop;
    grid.replaceChildren();
    const corner = document.createElement("div");
    corner.className = "corner";
    grid.append(corner);
    const today = startOfDay(new Date()).getTime();
    for (let i = 0; i < 7; i++) {
      const day = addDays(weekStart, i);
      const head = document.createElement("div");
      head.className = "day-head" + (day.getTime() === today ? " today" : "");
      head.textContent = dayName(day);
      grid.append(head);
    }
    const hours = document.createElement("div");
    hours.className = "hours";
    for (let h = 0; h < 24; h++) {
      const label = document.createElement("div");
      label.textContent = `${pad(h)}:00`;
      hours.append(label);
    }
    grid.append(hours);
    const columns = [];
    for (let i = 0; i < 7; i++) {
      const day = addDays(weekStart, i);
      const col = document.createElement("div");
      col.className = "day";
      col.dataset.date = localInput(day).slice(0, 10);
      col.style.height = `${24 * HOUR_PX}px`;
      col.addEventListener("click", (event) => {
        if (event.target !== col) return;
        const hour = Math.floor(event.offsetY / HOUR_PX);
        pickSlot(new Date(day.getFullYear(), day.getMonth(), day.getDate(), hour));
      });
      grid.append(col);
      columns.push({ day, col });
    }
    const end = addDays(weekStart, 6);
    document.getElementById("week-label").textContent =
      `${T.dayMonth(weekStart)} – ${T.dayMonth(end)} ${end.getFullYear()}`;
    if (scrollToHour) {
      const now = new Date();
      const thisWeek = now >= weekStart && now < addDays(weekStart, 7);
      const hour = thisWeek ? now.getHours() : 8;
      grid.scrollTop = Math.max(hour - 0.5, 0) * HOUR_PX;
      grid.dataset.openedAt = String(hour);
      scrollToHour = false;
    } else {
      grid.scrollTop = keep;
    }
    return columns;
  }

  function place(columns, start, end, build) {
    for (const { day, col } of columns) {
      const next = addDays(day, 1);
      if (end <= day || start >= next) continue;
      const from = start > day ? start : day;
      const to = end < next ? end : next;
      const top = from.getHours() * 60 + from.getMinutes();
      const bottom = to >= next ? 1440 : to.getHours() * 60 + to.getMinutes();
      const el = build(from, to);
      el.style.top = `${(top / 60) * HOUR_PX}px`;
      el.style.height = `${Math.max(((bottom - top) / 60) * HOUR_PX - 2, 12)}px`;
      col.append(el);
    }
  }

  function eventBox(kind, title, start, end) {
    const el = document.createElement("div");
    el.className = `event ${kind}`;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${hhmm(start)}–${hhmm(end)}`;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = title;
    el.append(time, label);
    el.title = `${title}\n${T.dateTime(start)} – ${T.dateTime(end)}`;
    return el;
  }

  async function load() {
    const ticket = ++loading;
    const from = weekStart;
    const to = addDays(weekStart, 7);
    const range = `starts_at=${encodeURIComponent(from.toISOString())}&ends_at=${encodeURIComponent(to.toISOString())}`;
    let busy, mine, blocks;
    try {
      [busy, mine, blocks] = await Promise.all([
        api("GET", `/robots/${robotId}/availability?${range}`),
        api("GET", `/reservations?robot_id=${robotId}&status=confirmed&limit=1000&${range}`),
        api("GET", `/maintenance?robot_id=${robotId}&${range}`),
      ]);
    } catch (err) {
      say(`Could not load the calendar: ${err.message}`);
      return;
    }
    if (ticket !== loading) return; // a newer load (other week) superseded this one
    const columns = skeleton();
    const own = new Map(mine.map((r) => [`${Date.parse(r.starts_at)}/${Date.parse(r.ends_at)}`, r]));
    for (const interval of busy.busy) {
      if (interval.kind === "job") {
        // an evaluation job holds the robot (raas jobs submit): busy like a booking
        place(columns, new Date(interval.starts_at), new Date(interval.ends_at), (s, e) =>
          eventBox("job", "evaluation job", s, e));
        continue;
      }
      if (interval.kind !== "reservation") continue;
      const key = `${Date.parse(interval.starts_at)}/${Date.parse(interval.ends_at)}`;
      if (own.has(key)) continue;
      place(columns, new Date(interval.starts_at), new Date(interval.ends_at), (s, e) =>
        eventBox("other", "booked", s, e));
    }
    for (const r of mine) {
      const yours = r.user_id === Number(root.dataset.userId);
      const who = yours ? "you" : names.get(r.user_id) || `user ${r.user_id}`;
      const title = who + (r.purpose ? `: ${r.purpose}` : "");
      place(columns, new Date(r.starts_at), new Date(r.ends_at), (s, e) => {
        const el = eventBox(yours ? "mine" : "other staff-view", title, s, e);
        el.dataset.reservationId = String(r.id);
        el.setAttribute("role", "button");
        el.addEventListener("click", () => cancel(r));
        return el;
      });
    }
    for (const b of blocks) {
      place(columns, new Date(b.starts_at), new Date(b.ends_at), (s, e) => {
        const el = eventBox("maintenance", `maintenance${b.reason ? ": " + b.reason : ""}`, s, e);
        el.dataset.maintenanceId = String(b.id);
        if (staff) {
          el.classList.add("staff-view");
          el.setAttribute("role", "button");
          el.addEventListener("click", () => removeBlock(b));
        }
        return el;
      });
    }
  }

  // ---- actions ----
  function pickSlot(start) {
    document.getElementById("book-start").value = localInput(start);
    if (staff) {
      document.getElementById("maint-start").value = localInput(start);
      document.getElementById("maint-end").value = localInput(new Date(start.getTime() + 3600000));
    }
    say("");
  }

  async function cancel(r) {
    const when = `${T.dateTime(new Date(r.starts_at))} – ${hhmm(new Date(r.ends_at))}`;
    if (!window.confirm(`Cancel the booking ${when}?`)) return;
    try {
      await api("POST", `/reservations/${r.id}/cancel`);
      say("Booking cancelled.", "ok");
    } catch (err) {
      say(`Could not cancel: ${err.message}`);
    }
    await load();
  }

  async function removeBlock(b) {
    if (!window.confirm("Remove this maintenance block? Bookings it cancelled stay cancelled.")) return;
    try {
      await api("DELETE", `/maintenance/${b.id}`);
      say("Maintenance block removed.", "ok");
    } catch (err) {
      say(`Could not remove the block: ${err.message}`);
    }
    await load();
  }

  document.getElementById("book-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = document.getElementById("book-start").value;
    if (!value) return say("Pick a start time.");
    const start = new Date(value);
    const hours = Number(document.getElementById("book-hours").value);
    const end = new Date(start.getTime() + hours * 3600000);
    try {
      const r = await api("POST", "/reservations", {
        robot_id: robotId,
        starts_at: start.toISOString(),
        ends_at: end.toISOString(),
        purpose: document.getElementById("book-purpose").value,
      });
      say(`Booked ${T.dateTime(new Date(r.starts_at))} – ${hhmm(new Date(r.ends_at))}.`, "ok");
      weekStart = mondayOf(start);
    } catch (err) {
      say(`Could not book: ${err.message}`);
    }
    await load();
  });

  const maintForm = document.getElementById("maint-form");
  if (maintForm) {
    maintForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const start = new Date(document.getElementById("maint-start").value);
      const end = new Date(document.getElementById("maint-end").value);
      try {
        const b = await api("POST", "/maintenance", {
          robot_id: robotId,
          starts_at: start.toISOString(),
          ends_at: end.toISOString(),
          reason: document.getElementById("maint-reason").value,
        });
        const n = b.cancelled_reservations.length;
        say(`Maintenance block added${n ? `; ${n} booking(s) cancelled` : ""}.`, "ok");
        weekStart = mondayOf(start);
      } catch (err) {
        say(`Could not add the block: ${err.message}`);
      }
      await load();
    });
  }

  // ---- navigation ----
  function go(week) {
    weekStart = week;
    scrollToHour = true;
    const url = new URL(location.href);
    url.searchParams.set("week", localInput(week).slice(0, 10));
    history.replaceState(null, "", url);
    say("");
    load();
  }
  document.getElementById("prev-week").addEventListener("click", () => go(addDays(weekStart, -7)));
  document.getElementById("next-week").addEventListener("click", () => go(addDays(weekStart, 7)));
  document.getElementById("this-week").addEventListener("click", () => go(mondayOf(new Date())));

  // ---- live robot status ----
  function badge(id, text, cls) {
    const el = document.getElementById(id);
    el.textContent = text;
    el.className = `badge ${cls}`;
  }
  async function pollStatus() {
    try {
      const robot = await api("GET", `/robots/${robotId}`);
      badge("status-value", robot.status, `status-${robot.status}`);
      badge("status-online", robot.online ? "online" : "no heartbeat", robot.online ? "online" : "offline");
      badge("status-bookable", robot.bookable ? "open" : "closed", robot.bookable ? "online" : "offline");
      document.getElementById("status-heartbeat").textContent = robot.last_heartbeat_at
        ? T.stamp(new Date(robot.last_heartbeat_at))
        : "—";
      // safety.js renders the safety, health and wear panel from the same poll
      document.dispatchEvent(new CustomEvent("raas:robot", { detail: robot }));
    } catch (err) {
      badge("status-online", "service unreachable", "offline");
    }
  }

  document.getElementById("tz-name").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
  async function loadNames() {
    if (!staff) return;
    try {
      for (const u of await api("GET", "/users?limit=1000")) names.set(u.id, u.name);
    } catch (err) {
      // names are a convenience: without them staff see "user <id>"
    }
  }

  skeleton();
  loadNames().then(load);
  pollStatus();
  setInterval(pollStatus, pollMs);
  setInterval(() => { if (!document.hidden) load(); }, Math.max(pollMs * 6, 15000));
})();
