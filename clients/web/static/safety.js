// The booking page's safety panel for one robot: e-stop, health block, wear.
// Like calendar.js it only talks to the JSON API with the login cookie:
//   POST /robots/{id}/estop, /clear-estop        e-stop (staff or the booking running now)
//   POST /robots/{id}/clear-health               lift a failed health check's block (staff)
//   GET  /robots/{id}/wear                       wear per actuator, thresholds, alerts
//   POST /robots/{id}/wear/reset                 after maintenance (staff)
// The robot's state arrives with calendar.js's status poll (event "raas:robot").
"use strict";

(() => {
  const root = document.getElementById("booking");
  const panel = document.getElementById("safety-panel");
  if (!root || !panel) return;
  const robotId = Number(root.dataset.robotId);
  const staff = root.dataset.staff === "true";
  const message = document.getElementById("message");
  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      throw new Error(detail || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  function say(text, kind = "error") {
    message.textContent = text;
    message.className = `message ${kind}`;
  }

  function item(text, cls) {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    return li;
  }

  // ---- the robot's state (from the status poll) ----
  function renderRobot(robot) {
    const safety = $("status-safety");
    const state = robot.safety_state || "unknown";
    safety.textContent = robot.safety_state
      ? robot.safety_state + (robot.safety_reason ? ` · ${robot.safety_reason}` : "")
      : "not reported";
    safety.className = `badge safety-${state}`;
    safety.title = robot.safety_reason || "";
    $("estop-state").hidden = !robot.estop_latched;
    if ($("clear-estop")) $("clear-estop").hidden = !robot.estop_latched;

    const health = $("health-state");
    const report = robot.health_report;
    if (robot.health_blocked) {
      health.textContent = `Blocked: ${robot.health_note}`;
      health.className = "message error";
    } else {
      health.textContent = report
        ? `Last check ${report.ok ? "passed" : "failed"}`
        : "No health check reported yet";
      health.className = "hint";
    }
    $("health-checks").replaceChildren(
      ...(report ? report.checks : []).map((c) =>
        item(c.name + (c.detail ? `: ${c.detail}` : ""), c.ok ? "ok" : "bad")),
    );
    if ($("clear-health")) $("clear-health").hidden = !robot.health_blocked;

    $("wear-alerts").replaceChildren(...robot.wear_alerts.map((a) => item(a)));
    $("wear-none").hidden = robot.wear_alerts.length > 0;
  }

  // ---- wear table ----
  const fmt = (x, digits = 1) => Number(x).toFixed(digits);
  async function loadWear() {
    let wear;
    try {
      wear = await api("GET", `/robots/${robotId}/wear`);
    } catch (err) {
      return; // the status badge already says when the service is unreachable
    }
    const t = wear.thresholds;
    const rows = Object.entries(wear.actuators).map(([name, w]) => {
      const tr = document.createElement("tr");
      tr.dataset.actuator = name;
      const cells = [
        [name, null],
        [fmt(w.travel_rad), t.travel_rad !== null && w.travel_rad >= t.travel_rad],
        [fmt(w.load_s / 3600, 2), t.load_s !== null && w.load_s >= t.load_s],
        [fmt(w.peak_effort, 2), t.peak_effort !== null && w.peak_effort >= t.peak_effort],
        [fmt(w.hours_run, 2), t.hours_run !== null && w.hours_run >= t.hours_run],
        [w.reset_at ? window.raasTime.date(new Date(w.reset_at)) : "never", null],
      ];
      for (const [text, over] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (over) td.className = "over";
        tr.append(td);
      }
      if (staff) {
        const td = document.createElement("td");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "reset";
        button.addEventListener("click", () => resetWear([name]));
        td.append(button);
        tr.append(td);
      }
      return tr;
    });
    $("wear-table").tBodies[0].replaceChildren(...rows);
    const limit = (x, scale = 1, unit = "") => (x === null ? "none" : `${fmt(x / scale, 2)}${unit}`);
    $("wear-thresholds").textContent =
      `Thresholds: travel ${limit(t.travel_rad)} rad, under load ${limit(t.load_s, 3600)} h, ` +
      `peak effort ${limit(t.peak_effort)}, hours run ${limit(t.hours_run)} h.`;
  }

  // ---- actions ----
  async function act(what, method, path, body, done) {
    try {
      await api(method, path, body);
      say(done, "ok");
    } catch (err) {
      say(`Could not ${what}: ${err.message}`);
    }
    try {
      renderRobot(await api("GET", `/robots/${robotId}`));
    } catch (err) { /* the next poll retries */ }
    await loadWear();
  }

  function resetWear(actuators) {
    const which = actuators ? actuators.join(", ") : "every actuator";
    if (!window.confirm(`Reset the wear of ${which} (after maintenance)?`)) return;
    act("reset the wear", "POST", `/robots/${robotId}/wear/reset`,
      { actuators: actuators || "all", note: "reset on the booking page" }, "Wear reset.");
  }

  const estop = $("estop-button");
  if (estop) {
    estop.addEventListener("click", () =>
      act("e-stop", "POST", `/robots/${robotId}/estop`, { note: "booking page" },
        "E-stop sent: the hand holds until staff clear it."));
  }
  if ($("clear-estop")) {
    $("clear-estop").addEventListener("click", () => {
      if (!window.confirm("Clear the e-stop? Check the robot first.")) return;
      act("clear the e-stop", "POST", `/robots/${robotId}/clear-estop`,
        { note: "cleared on the booking page" }, "E-stop cleared.");
    });
  }
  if ($("clear-health")) {
    $("clear-health").addEventListener("click", () => {
      const note = window.prompt("Clear the health block. What was checked or fixed?", "");
      if (note === null) return;
      act("clear the health block", "POST", `/robots/${robotId}/clear-health`, { note },
        "Health block cleared: the robot takes bookings again.");
    });
  }
  if ($("reset-wear-all")) $("reset-wear-all").addEventListener("click", () => resetWear(null));

  let polls = 0;
  document.addEventListener("raas:robot", (event) => {
    renderRobot(event.detail);
    if (++polls % 6 === 0 || event.detail.wear_alerts.length) loadWear();
  });
  loadWear();
})();
