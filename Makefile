# Vitrine: `make run` starts an archive with embedded defaults; `make test` runs the suite.
PY := .venv/bin/python
PIP := .venv/bin/pip --disable-pip-version-check -q
RUNTIME := .venv/.installed-runtime
TESTING := .venv/.installed-test
# The browser code (Mirador, three.js) from the npm registry, bundled and served by Vitrine.
FRONTEND := frontend/static/vendor/.built

.PHONY: run test test-unit test-scaled system-packages bench clean

$(RUNTIME): requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -r requirements.txt
	touch $@

$(TESTING): $(RUNTIME) requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $@

$(FRONTEND): frontend/package.json frontend/package-lock.json frontend/build.sh $(wildcard frontend/src/*)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && sh build.sh
	touch $@

run: $(RUNTIME) $(FRONTEND)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap
	$(PY) manage.py serve

# The real peers the tests talk to: dcmtk, Redis, PostgreSQL and Chromium (you are root).
system-packages:
	@missing=""; \
	command -v storescu >/dev/null || missing="$$missing dcmtk"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: $(TESTING) $(FRONTEND) system-packages
	$(PY) -m pytest -m "not scaled" -p no:cacheprovider
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest tests/unit/models3d -q -p no:cacheprovider
	$(PY) tests/scaled.py

test-unit: $(TESTING)
	$(PY) -m pytest tests/unit -q

test-scaled: $(TESTING) system-packages
	$(PY) tests/scaled.py

bench: $(TESTING) $(FRONTEND)
	$(PIP) install -r bench/requirements.txt
	@command -v Orthanc >/dev/null && command -v OrthancWSIDicomizer >/dev/null && test -x /usr/lib/iipimage-server/iipsrv.fcgi && command -v lighttpd >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb orthanc-wsi iipimage-server lighttpd >/dev/null)
	$(PY) bench/bench_dimse.py
	$(PY) bench/bench_archive.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_iiif.py
	$(PY) bench/bench_meshing.py
	$(PY) bench/bench_end_to_end.py

clean:
	rm -rf .venv var frontend/node_modules frontend/static/vendor
