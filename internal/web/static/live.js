// live.js: the pages' live updates from GET /live (Server-Sent Events).
//
// Opt in: <body data-live="/live?..."> or any element with data-live, or
// <meta name="flownexus-live" content="/live?...">. One EventSource per
// page; it reconnects by itself, and while it is down a small
// "reconnecting…" notice (.live-status) shows.
//
// Contract for every page: each message is dispatched on document as a
// CustomEvent "flownexus:<topic>" (registered, updated, deregistered,
// expired, values, operation, firmware) with
// detail = {endpoint, time, data}; data is the topic's payload
// (internal/events/topics.go).
//
// Generic updates by data attributes (inside an element
// data-endpoint="NAME", or anywhere with data-endpoint on the element
// itself when it names no other scope):
//   [data-field=online]      "online"/"offline" (class state-online /
//                            state-offline) on registered, updated,
//                            deregistered, expired
//   [data-field=last-seen]   the event's time on registration events
//   [data-value-path="/3/0/1"]  the value of that path on values events
//                            (its own text; [data-value-time] inside the
//                            same row gets the time)
//   [data-op-id=N]           a queued operation's row: its
//                            [data-field=status], [data-field=attempts],
//                            [data-field=result] follow operation events;
//                            the row's class is op-<STATUS>, and elements
//                            [data-op-queued] inside it are removed once
//                            it is no longer QUEUED (its cancel button)
//   [data-fw-id=N]           a firmware update's row: [data-field=state]
//                            and [data-field=result] follow firmware events
//   [data-live-refresh][id]  replaced by the element of the same id in a
//                            fresh copy of the page (GET of the
//                            data-live-page attribute's URL if an element
//                            has one, else of the location: a page that
//                            answers a POST names itself) each time the
//                            stream opens, so that what changed between the
//                            page's rendering and the subscription (or
//                            while disconnected) is not missed
//   [data-live-refresh-on="topic,topic"]  an element that also has
//                            data-live-refresh: an event of one of these
//                            topics refreshes the marked parts as above,
//                            at most once every 5 s
//   tbody[data-live-list]    a list of devices: a device that registers and
//                            has no row yet gets one at the top, its cells
//                            made from data-live-columns (comma-separated:
//                            name, online, last-seen, transport, lwm2m,
//                            firmware, blank) and only when its name starts
//                            with data-live-prefix (if set); a
//                            [data-live-new] element then shows
//                            "N new devices" (its link reloads).
(function () {
  "use strict";
  var src = null;
  var el = document.querySelector("[data-live]");
  if (el) { src = el.getAttribute("data-live"); }
  if (!src) {
    var meta = document.querySelector('meta[name="flownexus-live"]');
    if (meta) { src = meta.getAttribute("content"); }
  }
  if (!src || typeof EventSource === "undefined") { return; }

  var topics = ["registered", "updated", "deregistered", "expired", "values", "operation", "firmware"];
  var status = document.createElement("div");
  status.className = "live-status";
  status.setAttribute("role", "status");
  status.hidden = true;
  status.textContent = "reconnecting…";
  document.body.appendChild(status);

  function refresh() {
    var els = document.querySelectorAll("[data-live-refresh][id]");
    if (!els.length) { return Promise.resolve(); }
    var page = document.querySelector("[data-live-page]");
    var href = page ? page.getAttribute("data-live-page") : location.href;
    return fetch(href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        els.forEach(function (el) {
          var n = doc.getElementById(el.id);
          if (n) { el.replaceWith(document.importNode(n, true)); }
        });
      })
      .catch(function () {});
  }
  var es = new EventSource(src);
  es.onopen = function () {
    status.hidden = true;
    refresh().then(function () { document.documentElement.setAttribute("data-live-open", "1"); });
  };
  es.onerror = function () { status.hidden = false; document.documentElement.removeAttribute("data-live-open"); };
  var refreshOn = {}, refreshTimer = null, lastRefresh = 0;
  document.querySelectorAll("[data-live-refresh-on]").forEach(function (el) {
    el.getAttribute("data-live-refresh-on").split(",").forEach(function (t) { refreshOn[t.trim()] = true; });
  });
  function refreshSoon() {
    if (refreshTimer) { return; }
    var wait = Math.max(0, lastRefresh + 5000 - Date.now());
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      lastRefresh = Date.now();
      refresh();
    }, wait);
  }
  topics.forEach(function (topic) {
    es.addEventListener(topic, function (m) {
      var msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      var detail = { endpoint: msg.endpoint, time: msg.time, data: msg.data };
      document.dispatchEvent(new CustomEvent("flownexus:" + topic, { detail: detail }));
      if (refreshOn[topic]) { refreshSoon(); }
    });
  });
  window.addEventListener("pagehide", function () { es.close(); });

  function scopes(endpoint) {
    var out = [];
    document.querySelectorAll("[data-endpoint]").forEach(function (n) {
      if (n.getAttribute("data-endpoint") === endpoint) { out.push(n); }
    });
    return out;
  }
  function each(root, sel, fn) {
    if (root.matches && root.matches(sel)) { fn(root); }
    root.querySelectorAll(sel).forEach(fn);
  }
  function when(t) {
    var d = new Date(t);
    if (isNaN(d.getTime())) { return t || ""; }
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function setOnline(endpoint, online, time) {
    scopes(endpoint).forEach(function (s) {
      each(s, "[data-field=online]", function (c) {
        c.textContent = online ? "online" : "offline";
        c.classList.toggle("state-online", online);
        c.classList.toggle("state-offline", !online);
      });
      if (time) { each(s, "[data-field=last-seen]", function (c) { c.textContent = when(time); }); }
    });
  }
  var fresh = 0;
  function cell(row, key, d) {
    var td = document.createElement("td");
    switch (key) {
      case "name":
        var a = document.createElement("a");
        a.href = "/devices/" + encodeURIComponent(d.endpoint);
        a.textContent = d.endpoint;
        td.appendChild(a);
        break;
      case "online":
        var s = document.createElement("span");
        s.setAttribute("data-field", "online");
        s.className = "state-online";
        s.textContent = "online";
        td.appendChild(s);
        break;
      case "last-seen": td.setAttribute("data-field", "last-seen"); td.textContent = when(d.time); break;
      case "transport": td.textContent = (d.data && d.data.transport) || ""; break;
      case "lwm2m": td.textContent = (d.data && d.data.lwm2m_version) || ""; break;
    }
    row.appendChild(td);
  }
  function addDevice(d) {
    document.querySelectorAll("tbody[data-live-list]").forEach(function (tb) {
      var prefix = tb.getAttribute("data-live-prefix") || "";
      if (d.endpoint.indexOf(prefix) !== 0) { return; }
      var row = document.createElement("tr");
      row.setAttribute("data-endpoint", d.endpoint);
      row.className = "live-new";
      (tb.getAttribute("data-live-columns") || "name,online,last-seen").split(",").forEach(function (k) {
        cell(row, k.trim(), d);
      });
      tb.insertBefore(row, tb.firstChild);
      fresh++;
      document.querySelectorAll("[data-live-new]").forEach(function (n) {
        n.hidden = false;
        n.textContent = fresh === 1 ? "1 new device — show" : fresh + " new devices — show";
      });
    });
  }
  document.addEventListener("flownexus:registered", function (e) {
    var d = e.detail;
    if (scopes(d.endpoint).length === 0) { addDevice(d); }
    setOnline(d.endpoint, true, d.time);
  });
  document.addEventListener("flownexus:updated", function (e) { setOnline(e.detail.endpoint, true, e.detail.time); });
  document.addEventListener("flownexus:deregistered", function (e) { setOnline(e.detail.endpoint, false, null); });
  document.addEventListener("flownexus:expired", function (e) { setOnline(e.detail.endpoint, false, null); });
  document.addEventListener("flownexus:values", function (e) {
    var d = e.detail;
    var vals = (d.data && d.data.values) || [];
    scopes(d.endpoint).forEach(function (s) {
      vals.forEach(function (v) {
        each(s, '[data-value-path="' + v.path.replace(/["\\]/g, "") + '"]', function (c) {
          c.textContent = v.value === null || v.value === undefined ? "" : String(v.value);
          var row = c.closest("tr");
          if (row) {
            row.querySelectorAll("[data-value-time]").forEach(function (t) { t.textContent = when(v.received_at || d.time); });
          }
        });
      });
    });
  });
  document.addEventListener("flownexus:operation", function (e) {
    var op = e.detail.data || {};
    document.querySelectorAll('[data-op-id="' + Number(op.id) + '"]').forEach(function (row) {
      each(row, "[data-field=status]", function (c) { c.textContent = op.status; });
      each(row, "[data-field=attempts]", function (c) { c.textContent = String(op.attempts); });
      if (op.result_code || op.result_error) {
        each(row, "[data-field=result]", function (c) {
          c.textContent = [op.result_code, op.result_error].filter(Boolean).join(" ");
        });
      }
      row.className = row.className.replace(/\bop-[A-Z]+\b/g, "").trim() + " op-" + op.status;
      if (op.status !== "QUEUED") { row.querySelectorAll("[data-op-queued]").forEach(function (n) { n.remove(); }); }
    });
  });
  document.addEventListener("flownexus:firmware", function (e) {
    var fw = e.detail.data || {};
    document.querySelectorAll('[data-fw-id="' + Number(fw.id) + '"]').forEach(function (row) {
      each(row, "[data-field=state]", function (c) { c.textContent = fw.state; });
      if (fw.result || fw.error) {
        each(row, "[data-field=result]", function (c) { c.textContent = fw.error || fw.result; });
      }
    });
  });
})();
