# Two commands a newcomer needs:  make demo  |  make test   (both bootstrap from nothing)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt | cksum | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv models test demo bench lint clean

$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# model weights are fetched and checksum-verified, never committed (models/*.onnx is git-ignored)
models: venv
	$(PY) -m matting models fetch u2netp

test: models
	$(PY) -m pytest

demo: models
	$(PY) -m matting remove include/samples -o out/demo
	$(PY) -m matting remove include/samples -o out/demo-id-blue --scenario id_photo --bg blue --format jpeg
	@echo "cut-outs (transparent PNG): $(CURDIR)/out/demo"
	@echo "over ID-photo blue (JPEG):  $(CURDIR)/out/demo-id-blue"

bench: models
	$(PY) -m matting bench

lint: venv
	$(VENV)/bin/ruff check plugins tests dags

clean:
	rm -rf out bench_out .pytest_cache
