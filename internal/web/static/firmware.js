// Firmware pages: the upload form's progress bar, and live update rows.
"use strict";

(function () {
  // Upload: send the form by XMLHttpRequest to show its progress. The
  // form works without this script (a plain multipart POST).
  var form = document.getElementById("upload");
  if (form && window.FormData && window.XMLHttpRequest) {
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var xhr = new XMLHttpRequest();
      var button = form.querySelector("button[type=submit]");
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round((e.loaded / e.total) * 100);
          status.textContent = "Uploading: " + bar.value + "%";
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          // The server answered with the page the upload redirected to.
          window.location.assign(xhr.responseURL || "/firmware");
          return;
        }
        // Show the server's message (the form page answered again).
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var msg = doc.querySelector(".form-error, .problem, main p");
        status.textContent = msg ? msg.textContent : "Upload failed (" + xhr.status + ")";
        status.className = "error form-error";
        bar.hidden = true;
        button.disabled = false;
      });
      xhr.addEventListener("error", function () {
        status.textContent = "Upload failed: the connection was lost.";
        status.className = "error form-error";
        bar.hidden = true;
        button.disabled = false;
      });
      bar.hidden = false;
      bar.value = 0;
      status.className = "muted";
      status.textContent = "Uploading…";
      button.disabled = true;
      xhr.send(new FormData(form));
    });
  }

  // Live: an update's row (data-update-id) follows its firmware events.
  document.addEventListener("flownexus:firmware", function (e) {
    var d = e.detail && e.detail.data;
    if (!d || d.id === undefined) {
      return;
    }
    var rows = document.querySelectorAll('tr[data-update-id="' + String(d.id) + '"]');
    rows.forEach(function (row) {
      var set = function (cls, text) {
        var cell = row.querySelector("td." + cls);
        if (cell && text !== undefined && text !== null) {
          cell.textContent = text;
        }
      };
      var state = row.querySelector("td.state");
      if (state && d.state && state.className.indexOf("fw-") >= 0) {
        state.className = "state fw-" + d.state;
        state.textContent = d.state;
      } else if (state && d.state) {
        state.textContent = "#" + d.id + " " + d.state;
      }
      set("method", d.method);
      set("protocol", d.protocol);
      var result = [d.result_code || "", d.result || "", d.error || ""].join(" ").trim();
      if (result) {
        set("result", result);
      }
      if (d.state === "succeeded" || d.state === "failed" || d.state === "cancelled") {
        var cancel = row.querySelector("form.cancel");
        if (cancel) {
          cancel.remove();
        }
      }
      row.classList.remove("live-changed");
      void row.offsetWidth;
      row.classList.add("live-changed");
    });
  });
})();
