# Two commands on a fresh machine:  `make demo` (the instructor pipeline) and `make test` (everything).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
JOBS   ?= 3  # test processes: on 2 cores, 2 kept one core busy on average (each waits on kernels and sandboxes)

.PHONY: demo test test-fast lab release site clean

demo: $(VENV)/.installed  ## release every exercise, grade the sample submissions, write feedback and grades.csv
	$(BIN)/course demo

test: $(VENV)/.installed  ## the whole test suite: utils, release checks, grading pipeline, lectures (nbval)
	$(BIN)/pytest -n $(JOBS) --dist loadfile

test-fast: $(VENV)/.installed  ## everyday: every test but the lectures, the sandboxed grading, the Colab simulation and the browser (under a minute)
	$(BIN)/pytest -n $(JOBS) -m "not pipeline and not lecture and not colab and not browser"

lab: $(VENV)/.installed  ## open JupyterLab on the course
	$(BIN)/jupyter lab

release: $(VENV)/.installed  ## regenerate exercises/ from solutions/ and prove each release right
	$(BIN)/course release

site: $(VENV)/.installed  ## the course website in site/ (site/index.html), from the stored outputs
	$(BIN)/course site

# Setup: a virtual environment with the course installed in editable mode (with the instructor's, the
# site's and the tests' extras), and the Debian packages the course uses where they can be had: Graphviz's
# `dot` (graph pictures), bubblewrap (the grader's sandbox, Linux) and Chromium with its driver (the
# browser tests). As root with apt-get they are installed while pip works; elsewhere a note says how.
DEBS := $(if $(shell command -v dot),,graphviz) $(if $(shell command -v bwrap),,bubblewrap) \
        $(if $(shell command -v chromium),,chromium) $(if $(shell command -v chromedriver),,chromium-driver)

$(VENV)/.installed: pyproject.toml
	@if [ -n "$(strip $(DEBS))" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  ( apt-get install -y -qq $(DEBS) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(DEBS) >/dev/null; } ) & \
	fi; \
	$(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[instructor,site,test]'; \
	status=$$?; wait; exit $$status
	@command -v dot >/dev/null || echo "NOTE: Graphviz's 'dot' is missing, so graph cells will show text instead of pictures. Install it with your package manager (apt-get install graphviz, brew install graphviz, conda install graphviz)."
	@[ "$$(uname)" != Linux ] || command -v bwrap >/dev/null || echo "NOTE: bubblewrap is missing, so 'course grade' cannot isolate submissions (it grades with a weaker fallback and says so). Install it with: apt-get install bubblewrap"
	@command -v chromium >/dev/null || echo "NOTE: Chromium is missing, so the browser tests will be skipped. Install it with: apt-get install chromium chromium-driver"
	touch $@

clean:  ## remove the course work folder (submissions, grades, feedback); keeps the virtual environment
	rm -rf coursework
