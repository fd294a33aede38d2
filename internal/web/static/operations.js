// Operations page: a row (data-operation-id) follows its operation events.
"use strict";

document.addEventListener("flownexus:operation", function (e) {
  var d = e.detail && e.detail.data;
  if (!d || d.id === undefined) {
    return;
  }
  var row = document.querySelector('tr[data-operation-id="' + String(d.id) + '"]');
  if (!row) {
    return;
  }
  var status = row.querySelector("td.status");
  if (status && d.status) {
    status.className = "status op-" + d.status;
    status.textContent = d.status;
  }
  var attempts = row.querySelector("td.attempts");
  if (attempts && d.attempts !== undefined) {
    attempts.textContent = String(d.attempts);
  }
  var result = row.querySelector("td.result");
  if (result) {
    result.textContent = [d.result_code || "", d.result_error || ""].join(" ").trim();
  }
  if (d.status && d.status !== "QUEUED") {
    var cancel = row.querySelector("form.cancel");
    if (cancel) {
      cancel.remove();
    }
  }
  row.classList.remove("live-changed");
  void row.offsetWidth;
  row.classList.add("live-changed");
});
