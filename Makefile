# eotriage — set-up and everyday commands.
#   make demo   install into .venv and run the pipeline on the bundled sample scenes
#   make test   install into .venv (with test tools) and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LLAMA_VERSION ?= 0.3.36
# llama.cpp's AMX kernels crash on these CPUs (upstream llama.cpp #20824), see ../shared/DESIGN.md §7.
# AVX-512 stays off too: some of the machines we run on (AMD EPYC) have AVX2 but no AVX-512, and a
# wheel built with it dies there with SIGILL at model load.
# Build llama-cpp-python from source without AMX (and without -march=native) into a folder of our own,
# bypassing pip's wheel cache, which ignores CMAKE_ARGS and could hand back a crashing wheel.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
# one wheel folder per set of build flags, so a wheel built with other flags is never reused
WHEELS := .wheels/$(shell echo "$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)" | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: demo test install install-test install-bench install-gpu lint bench clean llama-wheel \
	chromium

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

llama-wheel: $(VENV)/bin/activate
	@if ! ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_VERSION) without AMX (takes 3-5 min on 2 cores)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-cache-dir --no-deps -w $(WHEELS) \
			"llama-cpp-python==$(LLAMA_VERSION)"; \
	fi
	$(PIP) install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl

install: llama-wheel
	$(PIP) install --quiet -e ".[viewer]"

install-test: llama-wheel chromium
	$(PIP) install --quiet -e ".[test]"

# headless Chromium for the ground viewer's browser tests (Debian's package; skipped when present)
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium missing and apt-get unavailable (needs root): browser tests will be skipped"; \
	fi

install-bench: llama-wheel
	$(PIP) install --quiet -e ".[bench,cluster,train,clouds-accurate]"

# onnxruntime-gpu replaces the CPU package (both install the same 'onnxruntime' module).
install-gpu: install
	$(PIP) uninstall --quiet -y onnxruntime onnxruntime-gpu
	$(PIP) install --quiet "onnxruntime-gpu>=1.17"

DEMO_SCENES := sample_scenes/s2_fire_G90292 sample_scenes/s2_l1c_virginia_crop \
	sample_scenes/sen2ships_honolulu sample_scenes/sen2ships_casablanca
# crop stress is judged only inside a cropland layer: the hand-drawn parcels of the Virginia
# sample cover that scene and no other, so the other scenes say "no cropland layer covers it"
DEMO_CROP_MASK := sample_scenes/s2_l1c_virginia_crop/parcels.geojson

# onboard: detect, report, pack (with quicklooks and chips); then on the ground: decode every
# scene's packets as a folder of passes into demo_out/ground/ with the HTML viewer
demo: install
	$(VENV)/bin/eotriage run $(DEMO_SCENES) --out demo_out --quicklook --chips \
		--crop-mask $(DEMO_CROP_MASK)
	rm -rf demo_out/ground
	$(VENV)/bin/eotriage decode demo_out --out demo_out/ground
	@echo "Ground viewer: $(CURDIR)/demo_out/ground/index.html"

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check pipeline ground_decoder models benchmarks tests
	$(VENV)/bin/mypy pipeline ground_decoder

# every benchmark in one run: benchmarks/RESULTS.md, results.json, plots/ (see benchmarks/run_all.py)
bench: install-bench
	$(VENV)/bin/eotriage bench

clean:
	rm -rf $(VENV) .wheels demo_out build *.egg-info .pytest_cache
