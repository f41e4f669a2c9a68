// The Jobs panel on /book: evaluation jobs (raas jobs submit) with their status, the policy
// they run (a bundle's digest, or the policy server the robot dials), robot, episodes done and
// per-episode successes; cancel a queued or running one. Researchers see
// their own jobs, staff everyone's with names. The robot column: the robot running the job,
// else the robots that ran its episodes, else what the job asked for. Same JSON API as `raas jobs`, with the cookie:
//   GET  /jobs                 (the service answers a researcher's own, staff all)
//   POST /jobs/{id}/cancel
//   GET  /users                (staff) names for everyone's jobs
"use strict";

(() => {
  const panel = document.getElementById("jobs-panel");
  if (!panel) return;
  const staff = panel.dataset.staff === "true";
  const pollMs = Number(panel.dataset.pollMs) || 5000;
  const body = document.querySelector("#jobs-table tbody");
  const none = document.getElementById("jobs-none");
  const filter = document.getElementById("jobs-filter");
  const message = document.getElementById("jobs-message");
  const T = window.raasTime;
  const ACTIVE = new Set(["queued", "running"]);
  const SHOWN = 100; // newest first; `raas jobs list` has them all
  const names = new Map(); // user id -> name (staff: GET /users), the email as the tooltip

  function say(text, kind = "error") {
    message.textContent = text;
    message.className = `message ${text ? kind : ""}`;
  }

  async function api(method, path) {
    const response = await fetch(path, { method, credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      throw new Error("signed out");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      throw new Error(detail || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function robotOf(job) {
    if (job.claimed_by) return job.claimed_by;
    const ran = [...new Set((job.results || []).map((r) => r.robot).filter(Boolean))].sort();
    if (ran.length) return ran.join(", ");
    if (job.robot) return job.robot;
    return job.hand_model ? `any ${job.hand_model}` : "any robot";
  }

  // [text, tooltip]: "bundle 0123456789ab" (the full digest as the tooltip), or
  // "server tcp://gpu:7000" (its public key and chunk size as the tooltip)
  function policyOf(job) {
    const ps = job.policy_server;
    if (ps) return [`server ${ps.endpoint}`, `policy server key ${ps.server_key}, H=${ps.horizon}, ${ps.blend}`];
    if (job.bundle_sha256) return [`bundle ${job.bundle_sha256.slice(0, 12)}`, `bundle sha256 ${job.bundle_sha256}`];
    return ["—", ""];
  }

  function successes(job) {
    const results = (job.results || []).slice().sort((a, b) => a.index - b.index);
    return results.map((r) => {
      const n = r.successes;
      return r.safety_stop ? `${n}⚠` : String(n);
    }).join(" ");
  }

  function row(job) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = String(job.id);
    tr.dataset.status = job.status;
    tr.append(cell(`#${job.id}`));
    if (staff) {
      const who = cell(names.get(job.user_id) || job.user || `user ${job.user_id}`, "job-user");
      who.title = job.user || "";
      tr.append(who);
    }
    const status = cell("", "job-status");
    const badge = document.createElement("span");
    badge.className = `badge job-${job.status}`;
    badge.textContent = job.status;
    status.append(badge);
    if (job.message) status.title = job.message;
    tr.append(status);
    const [policy, policyTitle] = policyOf(job);
    const policyCell = cell(policy, "job-policy");
    policyCell.title = policyTitle;
    tr.append(policyCell);
    tr.append(cell(robotOf(job), "job-robot"));
    tr.append(cell(`${job.episodes_done}/${job.episodes}`, "job-episodes"));
    tr.append(cell(successes(job), "job-results"));
    tr.append(cell(job.created_at ? T.dateTime(new Date(job.created_at)) : "—"));
    const actions = document.createElement("td");
    if (ACTIVE.has(job.status)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "job-cancel";
      button.textContent = "Cancel";
      button.addEventListener("click", () => cancel(job));
      actions.append(button);
    }
    tr.append(actions);
    return tr;
  }

  let loading = 0;
  async function load() {
    const ticket = ++loading;
    let jobs;
    try {
      jobs = await api("GET", "/jobs");
    } catch (err) {
      say(`Could not load the jobs: ${err.message}`);
      return;
    }
    if (ticket !== loading) return;
    if (message.classList.contains("error") && message.textContent.startsWith("Could not load")) say("");
    const items = Array.isArray(jobs) ? jobs : jobs.jobs || [];
    const shown = items
      .filter((j) => filter.value === "all" || ACTIVE.has(j.status))
      .sort((a, b) => b.id - a.id)
      .slice(0, SHOWN);
    body.replaceChildren(...shown.map(row));
    none.hidden = shown.length > 0;
  }

  async function cancel(job) {
    const what = job.status === "running" ? `running on ${job.claimed_by}; the robot stops and the hand holds` : "queued";
    if (!window.confirm(`Cancel job #${job.id} (${what})?`)) return;
    try {
      await api("POST", `/jobs/${job.id}/cancel`);
      say(`Job #${job.id} cancelled.`, "ok");
    } catch (err) {
      say(`Could not cancel job #${job.id}: ${err.message}`);
    }
    await load();
  }

  async function loadNames() {
    if (!staff) return;
    try {
      for (const u of await api("GET", "/users?limit=1000")) names.set(u.id, u.name);
    } catch (err) {
      // names are a convenience: without them staff see the submitter's email
    }
  }

  filter.addEventListener("change", load);
  loadNames().then(load);
  setInterval(() => { if (!document.hidden) load(); }, pollMs);
})();
