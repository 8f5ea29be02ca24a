# Two commands a newcomer needs:  make demo  |  make test   (both bootstrap from nothing)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt constraints.txt | cksum | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv models test demo bench lint clean

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# model weights are fetched and checksum-verified, never committed (models/*.onnx is git-ignored)
models: venv
	$(PY) -m matting models fetch u2netp

test: models
	$(PY) -m pytest

demo: models
	$(PY) -m matting remove include/samples -o out/demo
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-cn-1inch --spec cn-1inch --bg blue --sheet 4x6
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-us --spec us-passport --bg white
	$(PY) -m matting idphoto include/samples/astronaut.jpg -o out/id-schengen --spec schengen --bg light-grey
	@echo "cut-outs (transparent PNG):        $(CURDIR)/out/demo"
	@echo "ID photos (+ reports, 4x6 sheet):  $(CURDIR)/out/id-cn-1inch $(CURDIR)/out/id-us $(CURDIR)/out/id-schengen"

bench: models
	$(PY) -m matting bench

lint: venv
	$(VENV)/bin/ruff check plugins tests dags

clean:
	rm -rf out bench_out .pytest_cache
