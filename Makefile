# Two commands on a fresh machine:  `make demo` (the instructor pipeline) and `make test` (everything).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
JOBS   ?= 2  # test processes: the lectures and the grading tests overlap (each one waits on kernels and sandboxes)

.PHONY: demo test test-fast lab release clean

demo: $(VENV)/.installed  ## release every exercise, grade the sample submissions, write feedback and grades.csv
	$(BIN)/course demo

test: $(VENV)/.installed  ## the whole test suite: utils, release checks, grading pipeline, lectures (nbval)
	$(BIN)/pytest -n $(JOBS) --dist loadfile

test-fast: $(VENV)/.installed  ## everyday: every test but the lectures, the sandboxed grading and the Colab simulation (a minute or so)
	$(BIN)/pytest -m "not pipeline and not lecture and not colab"

lab: $(VENV)/.installed  ## open JupyterLab on the course
	$(BIN)/jupyter lab

release: $(VENV)/.installed  ## regenerate exercises/ from solutions/ and prove each release right
	$(BIN)/course release

# Setup: a virtual environment with the course installed in editable mode, plus Graphviz's `dot`
# and, on Linux, bubblewrap (the grader's sandbox).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[instructor,test]'
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq graphviz >/dev/null || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }; }; } || \
	  echo "NOTE: Graphviz's 'dot' is missing, so graph cells will show text instead of pictures. Install it with your package manager (apt-get install graphviz, brew install graphviz, conda install graphviz)."
	@[ "$$(uname)" != Linux ] || command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq bubblewrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; }; } || \
	  echo "NOTE: bubblewrap is missing, so 'course grade' cannot isolate submissions (it grades with a weaker fallback and says so). Install it with: apt-get install bubblewrap"
	touch $@

clean:  ## remove the course work folder (submissions, grades, feedback); keeps the virtual environment
	rm -rf coursework
