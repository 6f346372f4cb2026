// Vitrine's meshing page: threshold preview, meshing jobs, and a three.js view of the result.
//
// The page config (JSON in #meshing-config) names the API routes. three.js is imported
// lazily through the page's import map (Vitrine's own static copy), so the preview and
// the job controls work even where the viewer cannot start. window.vitrineMeshing holds
// the page's state for people debugging it and for the browser test.

const config = JSON.parse(document.getElementById("meshing-config").textContent);
const el = (id) => document.getElementById(id);
const page = (window.vitrineMeshing = {
  state: "idle", job: null, mesh: null, rendered: false, previewLoads: 0,
  loadedTriangles: 0, error: "", seenPercents: [],
});
const POLL_MS = 400;
const PREVIEW_DELAY_MS = 120;

// --- threshold controls and preview -----------------------------------------------------

function fillPresets() {
  const select = el("preset");
  for (const preset of config.presets) {
    select.add(new Option(preset.label, preset.name));
  }
  select.add(new Option("Custom threshold", "custom"));
  select.value = config.default_preset;
  applyPreset();
}

function currentPreset() {
  return config.presets.find((p) => p.name === el("preset").value) || null;
}

function applyPreset() {
  const preset = currentPreset();
  const slider = el("threshold");
  if (preset && preset.levels.length === 1) {
    slider.value = preset.levels[0];
    el("threshold-number").value = preset.levels[0];
  }
  slider.disabled = Boolean(preset && preset.levels.length !== 1);
  showThreshold();
  schedulePreview();
}

function showThreshold() {
  const preset = currentPreset();
  let text = String(customLevel());
  if (preset && preset.levels.length === 2) text = `${preset.levels[0]} to ${preset.levels[1]}`;
  if (preset && preset.levels.length === 0) text = "Otsu";
  el("threshold-value").textContent = text;
}

/** The threshold part of a job request: a preset name, or a level in HU. */
function thresholdParams() {
  const preset = currentPreset();
  if (preset) return { preset: preset.name };
  return { threshold_hu: customLevel() };
}

/** The typed level if there is one (it may lie beyond the slider), else the slider's. */
function customLevel() {
  const typed = el("threshold-number").value;
  return typed !== "" && Number.isFinite(Number(typed)) ? Number(typed) : Number(el("threshold").value);
}

function useCustomLevel() {
  el("preset").value = "custom";
  el("threshold").disabled = false;
  showThreshold();
  schedulePreview();
}

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(updatePreview, PREVIEW_DELAY_MS);
}

function updatePreview() {
  const query = new URLSearchParams({ index: el("slice").value, ...thresholdParams() });
  el("preview").src = `${config.preview_url}?${query}`;
  el("slice-label").textContent = `${Number(el("slice").value) + 1} of ${config.slices}`;
}

// --- jobs ------------------------------------------------------------------------------------

async function api(url, options = {}) {
  const response = await fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "X-CSRFToken": config.csrf_token, ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || Object.entries(body).map(([k, v]) => `${k}: ${v}`).join("; ") || response.statusText);
  }
  return body;
}

function jobRequest() {
  const body = {
    series_uid: config.series_uid,
    ...thresholdParams(),
    smooth_iterations: Number(el("smooth-iterations").value),
    smooth_passband: Number(el("passband").value),
    outputs: el("want-obj").checked ? ["stl", "obj"] : ["stl"],
  };
  const target = el("target-triangles").value;
  if (target) body.target_triangles = Number(target);
  return body;
}

async function startJob() {
  setError("");
  el("start").disabled = true;
  try {
    const job = await api(config.jobs_url, {
      method: "POST", body: JSON.stringify(jobRequest()), headers: { "Content-Type": "application/json" },
    });
    follow(job);
  } catch (err) {
    setError(err.message);
    el("start").disabled = !config.can_start;
  }
}

async function cancelJob() {
  if (!page.job) return;
  try {
    follow(await api(`${config.jobs_url}/${page.job.id}/cancel`, { method: "POST" }));
  } catch (err) {
    setError(err.message);
  }
}

function follow(job) {
  page.job = job;
  page.state = job.state;
  page.seenPercents.push(job.percent);
  el("progress").value = job.percent;
  const eta = job.eta_s != null ? `, about ${Math.ceil(job.eta_s)} s left` : "";
  el("status").textContent = `Job ${job.id}: ${job.state}${job.stage && job.stage !== job.state ? ` (${job.stage})` : ""}, ${job.percent}%${eta}`;
  const running = job.state === "queued" || job.state === "running";
  el("cancel").hidden = !running || !config.can_start;
  el("start").disabled = running || !config.can_start;
  if (running) {
    setTimeout(() => api(`${config.jobs_url}/${job.id}`).then(follow, (err) => setError(err.message)), POLL_MS);
    return;
  }
  if (job.state === "failed") setError(job.error);
  if (job.state === "done") {
    listJobs();
    if (job.meshes.length) showMesh(job, job.meshes[0]);
  }
}

function setError(message) {
  page.error = message;
  el("error").textContent = message;
}

async function listJobs() {
  const jobs = await api(`${config.jobs_url}?series=${encodeURIComponent(config.series_uid)}`);
  const list = el("jobs");
  list.replaceChildren();
  for (const job of jobs.filter((j) => j.state === "done")) {
    for (const mesh of job.meshes) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Show";
      button.addEventListener("click", () => showMesh(job, mesh));
      item.append(button, ` ${job.description}${mesh.label ? ` ${mesh.label}` : ""}: ${mesh.triangles} triangles`);
      list.append(item);
    }
  }
  if (!jobs.length) list.textContent = "None yet.";
  return jobs;
}

// --- the mesh ----------------------------------------------------------------------------------

function formatNumber(value, digits) {
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function showStats(mesh) {
  el("stat-volume").textContent = `${formatNumber(mesh.volume_mm3, 1)} mm³ (${formatNumber(mesh.volume_mm3 / 1000, 3)} cm³)`;
  el("stat-area").textContent = `${formatNumber(mesh.area_mm2, 1)} mm²`;
  el("stat-triangles").textContent = formatNumber(mesh.triangles, 0);
  el("stat-watertight").textContent = mesh.watertight ? "yes" : "no";
  el("stats").hidden = false;
  el("download-dicom").href = mesh.stl.dicom;
  el("download-stl").href = mesh.stl.download;
  el("download-obj").hidden = !mesh.obj;
  if (mesh.obj) el("download-obj").href = mesh.obj.download;
  el("downloads").hidden = false;
}

let viewer = null;

async function startViewer() {
  const THREE = await import("three");
  const { STLLoader } = await import("three/addons/STLLoader.js");
  const { OrbitControls } = await import("three/addons/OrbitControls.js");
  const canvas = el("viewer");
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x1d2430);
  const camera = new THREE.PerspectiveCamera(35, 4 / 3, 0.1, 1000);
  camera.up.set(0, 0, 1); // DICOM patient axes: +z points to the head
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 1.4));
  const key = new THREE.DirectionalLight(0xffffff, 1.6);
  key.position.set(1, -1, 2);
  camera.add(key);
  scene.add(camera);
  const controls = new OrbitControls(camera, canvas);
  const material = new THREE.MeshStandardMaterial({ color: 0xe6dcc8, roughness: 0.65, metalness: 0.0 });
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  const fit = () => {
    const width = canvas.clientWidth, height = canvas.clientHeight;
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    draw();
  };
  new ResizeObserver(fit).observe(canvas);
  return { THREE, loader: new STLLoader(), renderer, scene, camera, controls, material, draw, fit, object: null };
}

async function showMesh(job, mesh) {
  page.mesh = mesh;
  page.rendered = false;
  showStats(mesh);
  el("viewer-message").textContent = "Loading the mesh…";
  try {
    viewer = viewer || (await startViewer());
  } catch (err) {
    el("viewer-message").textContent = `The 3D viewer could not start: ${err.message}`;
    return;
  }
  const response = await fetch(mesh.stl.download, { credentials: "same-origin" });
  if (!response.ok) {
    el("viewer-message").textContent = `The STL could not be loaded (${response.status})`;
    return;
  }
  const geometry = viewer.loader.parse(await response.arrayBuffer());
  geometry.computeBoundingBox();
  const centre = geometry.boundingBox.getCenter(new viewer.THREE.Vector3());
  geometry.translate(-centre.x, -centre.y, -centre.z);
  geometry.computeBoundingSphere();
  const radius = geometry.boundingSphere.radius || 1;
  if (viewer.object) {
    viewer.scene.remove(viewer.object);
    viewer.object.geometry.dispose();
  }
  viewer.object = new viewer.THREE.Mesh(geometry, viewer.material);
  viewer.scene.add(viewer.object);
  // Look from the front (anterior is -y in patient coordinates), a little from above.
  viewer.camera.near = radius / 100;
  viewer.camera.far = radius * 100;
  viewer.camera.position.set(0, -4.4 * radius, 1.5 * radius);
  viewer.controls.target.set(0, 0, 0);
  viewer.controls.update();
  viewer.fit();
  page.loadedTriangles = geometry.attributes.position.count / 3;
  page.rendered = true;
  el("viewer-message").textContent = `${job.description}, job ${job.id}`;
}

/** Share of the canvas's pixels that differ from the background (the mesh's footprint). */
page.meshPixelShare = function meshPixelShare() {
  if (!viewer) return 0;
  const gl = viewer.renderer.getContext();
  const width = gl.drawingBufferWidth, height = gl.drawingBufferHeight;
  const pixels = new Uint8Array(width * height * 4);
  gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
  const background = [0x1d, 0x24, 0x30];
  let differ = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (Math.abs(pixels[i] - background[0]) + Math.abs(pixels[i + 1] - background[1]) + Math.abs(pixels[i + 2] - background[2]) > 24) differ += 1;
  }
  return differ / (width * height);
};

// --- start -------------------------------------------------------------------------------------

function init() {
  fillPresets();
  el("slice").value = Math.floor(config.slices / 2);
  el("smooth-iterations").value = config.smooth_iterations;
  el("passband").value = config.smooth_passband;
  el("preview").addEventListener("load", () => { page.previewLoads += 1; });
  el("preview").addEventListener("error", () => setError("The preview could not be rendered."));
  el("slice").addEventListener("input", schedulePreview);
  el("preset").addEventListener("change", applyPreset);
  el("threshold").addEventListener("input", () => {
    el("threshold-number").value = el("threshold").value;
    useCustomLevel();
  });
  el("threshold-number").addEventListener("input", () => {
    el("threshold").value = customLevel();
    useCustomLevel();
  });
  el("start").addEventListener("click", startJob);
  el("cancel").addEventListener("click", cancelJob);
  el("start").disabled = !config.can_start;
  el("curators-only").hidden = config.can_start;
  updatePreview();
  listJobs().catch((err) => setError(err.message));
}

init();
