// The curator upload page: a small tus 1.0 client, then an ingest job polled to the end.
// Written for Vitrine (no library): creation (POST), HEAD to learn the offset, PATCH in
// chunks with XHR upload progress, and a resume from the server's offset after a
// network error. An upload's URL is remembered in localStorage, so that a reload picks
// the same file up where it stopped.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("upload-config").textContent);
  var TUS = "1.0.0";
  var RETRIES = 5;
  var files = [];   // {file, row, uploadBar, convertBar, statusCell, id}
  var busy = false;

  var drop = document.getElementById("drop");
  var input = document.getElementById("files");
  var rows = document.getElementById("file-rows");
  var statusLine = document.getElementById("status");
  var form = document.getElementById("meta-form");

  function human(bytes) {
    var units = ["B", "kB", "MB", "GB", "TB"];
    var i = 0;
    while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function cell(tr, content) {
    var td = document.createElement("td");
    if (typeof content === "string") { td.textContent = content; } else if (content) { td.appendChild(content); }
    tr.appendChild(td);
    return td;
  }

  function addFiles(list) {
    if (busy) { return; }
    for (var i = 0; i < list.length; i++) {
      var file = list[i];
      if (file.size > config.max_bytes) {
        statusLine.textContent = file.name + " is larger than this server accepts (" + human(config.max_bytes) + ")";
        statusLine.className = "error";
        continue;
      }
      var tr = document.createElement("tr");
      tr.className = "file-row";
      var uploadBar = document.createElement("progress");
      uploadBar.max = 100; uploadBar.value = 0; uploadBar.className = "upload-progress";
      var convertBar = document.createElement("progress");
      convertBar.max = 100; convertBar.value = 0; convertBar.className = "convert-progress";
      cell(tr, file.name);
      cell(tr, human(file.size));
      cell(tr, uploadBar);
      cell(tr, convertBar);
      var statusCell = cell(tr, "waiting");
      statusCell.className = "file-status";
      rows.appendChild(tr);
      files.push({file: file, row: tr, uploadBar: uploadBar, convertBar: convertBar, statusCell: statusCell, id: null});
    }
    document.getElementById("file-table").hidden = files.length === 0;
  }

  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  input.addEventListener("change", function () { addFiles(input.files); input.value = ""; });
  // A file dropped beside the zone must not replace the page with itself.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });

  // --- tus ----------------------------------------------------------------------------

  function b64(text) {
    var bytes = new TextEncoder().encode(text);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary);
  }

  function fingerprint(file) {
    return "vitrine-tus:" + [file.name, file.size, file.lastModified].join(":");
  }

  function request(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("Tus-Resumable", TUS);
      xhr.setRequestHeader("X-CSRFToken", config.csrf_token);
      Object.keys(headers).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      if (onProgress) { xhr.upload.onprogress = function (e) { onProgress(e.loaded); }; }
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = function () { reject(new Error("network error")); };
      xhr.send(body === undefined ? null : body);
    });
  }

  function failure(xhr, what) {
    var detail = xhr.statusText;
    try { detail = JSON.parse(xhr.responseText).detail || detail; } catch (e) { /* not JSON */ }
    return new Error(what + ": " + xhr.status + " " + detail);
  }

  async function resumeOrCreate(item) {
    var key = fingerprint(item.file);
    var known = window.localStorage.getItem(key);
    if (known) {
      var head = await request("HEAD", known, {});
      if (head.status === 200) { return {url: known, offset: parseInt(head.getResponseHeader("Upload-Offset"), 10)}; }
      window.localStorage.removeItem(key);
    }
    var created = await request("POST", config.uploads_url, {
      "Upload-Length": String(item.file.size),
      "Upload-Metadata": "filename " + b64(item.file.name) + ",filetype " + b64(item.file.type || "application/octet-stream"),
    });
    if (created.status !== 201) { throw failure(created, item.file.name); }
    var url = created.getResponseHeader("Location");
    window.localStorage.setItem(key, url);
    return {url: url, offset: 0};
  }

  async function upload(item) {
    var state = await resumeOrCreate(item);
    var size = item.file.size;
    var retries = 0;
    var show = function (offset) { item.uploadBar.value = size ? Math.floor(100 * offset / size) : 100; };
    show(state.offset);
    while (state.offset < size || size === 0) {
      if (size === 0) { break; }
      var end = Math.min(size, state.offset + config.chunk_bytes);
      var start = state.offset;
      try {
        var sent = await request("PATCH", state.url, {
          "Content-Type": "application/offset+octet-stream",
          "Upload-Offset": String(start),
        }, item.file.slice(start, end), function (loaded) { show(start + loaded); });
        if (sent.status !== 204) { throw failure(sent, item.file.name); }
        state.offset = parseInt(sent.getResponseHeader("Upload-Offset"), 10);
        retries = 0;
      } catch (err) {
        if (++retries > RETRIES) { throw err; }
        item.statusCell.textContent = "retrying (" + retries + ")";
        await new Promise(function (r) { setTimeout(r, 1000 * retries); });
        var head = await request("HEAD", state.url, {});
        if (head.status !== 200) { throw failure(head, item.file.name); }
        state.offset = parseInt(head.getResponseHeader("Upload-Offset"), 10);
      }
      show(state.offset);
    }
    window.localStorage.removeItem(fingerprint(item.file));
    item.uploadBar.value = 100;
    return state.url.replace(/\/+$/, "").split("/").pop();
  }

  // --- the ingest job -------------------------------------------------------------------

  function metadata() {
    var out = {};
    ["inventory_number", "title", "collection", "holding_institution", "object_date",
     "description", "rights", "licence", "attribution"].forEach(function (name) {
      var value = document.getElementById(name).value.trim();
      if (value) { out[name] = value; }
    });
    var voxel = document.getElementById("voxel_size_mm").value.trim();
    if (voxel) {
      out.voxel_size_mm = voxel.split(/[\s,;x]+/).filter(Boolean).map(Number);
    }
    return out;
  }

  async function postJob(ids) {
    var response = await fetch(config.jobs_url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": config.csrf_token},
      body: JSON.stringify({uploads: ids, metadata: metadata(),
                            visibility: document.getElementById("public").checked ? "public" : "private"}),
    });
    var body = await response.json();
    if (response.status !== 201) {
      var detail = body.detail || Object.keys(body).map(function (k) { return k + ": " + body[k]; }).join("; ");
      throw new Error("ingest request refused: " + detail);
    }
    return body;
  }

  async function follow(job) {
    for (;;) {
      var response = await fetch(job.url, {credentials: "same-origin"});
      job = await response.json();
      files.forEach(function (item) {
        item.convertBar.value = job.percent;
        item.statusCell.textContent = job.stage;
      });
      statusLine.textContent = "Job " + job.id + ": " + job.stage + " " + job.percent + "%";
      if (job.state === "done" || job.state === "failed") { return job; }
      await new Promise(function (r) { setTimeout(r, 500); });
    }
  }

  function showResult(job) {
    var links = job.links;
    document.getElementById("result-link").href = links.viewer;
    document.getElementById("manifest-link").href = links.iiif_manifest;
    document.getElementById("dicomweb-link").href = links.dicomweb_series;
    document.getElementById("result-summary").textContent = job.message + " (study " + links.study_uid + ")";
    document.getElementById("result").hidden = false;
  }

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    if (busy) { return; }
    statusLine.className = "";
    if (!files.length) { statusLine.textContent = "Add at least one file."; return; }
    if (!document.getElementById("inventory_number").value.trim()) {
      statusLine.textContent = "The inventory number is required.";
      statusLine.className = "error";
      return;
    }
    busy = true;
    document.getElementById("start").disabled = true;
    try {
      var ids = [];
      for (var i = 0; i < files.length; i++) {
        var item = files[i];
        if (!item.id) {  // a refused ingest request keeps the finished uploads for a retry
          item.statusCell.textContent = "uploading";
          statusLine.textContent = "Uploading " + item.file.name;
          item.id = await upload(item);
        }
        item.statusCell.textContent = "uploaded";
        ids.push(item.id);
      }
      statusLine.textContent = "Queuing the ingest job";
      var job = await follow(await postJob(ids));
      if (job.state === "done") {
        files.forEach(function (item) { item.statusCell.textContent = "done"; item.convertBar.value = 100; });
        statusLine.textContent = "Done: " + job.message;
        showResult(job);
      } else {
        // A job uses up its uploads, whatever its outcome: a retry uploads again.
        files.forEach(function (item) { item.statusCell.textContent = "failed"; item.id = null; });
        statusLine.textContent = "Failed, nothing was stored: " + job.message;
        statusLine.className = "error";
      }
    } catch (err) {
      statusLine.textContent = err.message;
      statusLine.className = "error";
    } finally {
      busy = false;
      document.getElementById("start").disabled = false;
    }
  });

  window.vitrineUpload = {files: files, addFiles: addFiles};
})();
