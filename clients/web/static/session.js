// Sign in and sign out (a file of its own: the page's Content-Security-Policy runs no inline
// script). The login form posts to /auth/login, which sets the HttpOnly session cookie, and
// goes on to the same-site path the server put in data-next.
"use strict";

// One time format for the whole page, in the browser's zone, 24-hour clock:
// dates 2026-11-23, times 09:00, instants 2026-11-23 09:00 (heartbeats with seconds).
window.raasTime = (() => {
  const pad = (n) => String(n).padStart(2, "0");
  const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const date = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const hhmm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return {
    pad,
    date,
    hhmm,
    dateTime: (d) => `${date(d)} ${hhmm(d)}`,
    stamp: (d) => `${date(d)} ${hhmm(d)}:${pad(d.getSeconds())}`,
    dayName: (d) => `${WEEKDAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]}`,
    dayMonth: (d) => `${d.getDate()} ${MONTHS[d.getMonth()]}`,
  };
})();

(() => {
  // server-rendered instants (data-time, ISO 8601) in the page's one format
  for (const el of document.querySelectorAll("[data-time]")) {
    el.textContent = window.raasTime.stamp(new Date(el.dataset.time));
  }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
      window.location.assign("/login");
    });
  }
  const form = document.getElementById("login-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = document.getElementById("login-message");
    message.textContent = "";
    const response = await fetch("/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        email: document.getElementById("email").value,
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) {
      window.location.assign(form.dataset.next || "/book");
    } else if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      message.textContent = `Too many failed sign-ins: try again in ${wait} s.`;
    } else {
      message.textContent = "Wrong email or password.";
    }
  });
})();
