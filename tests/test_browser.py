"""JupyterLab and the course website in a real browser (Debian's Chromium), as a student uses them.

Lecture 01 runs top to bottom in JupyterLab with no error and its graphs drawn as SVG; exercise 01 gets a
correct solution typed into its cells, its test cells pass, and nbgrader's Validate button says so; the
website's pages load with their pictures and rendered math, and no local link is broken. Screenshots:
artifacts/browser/. Run them alone with `pytest -m browser`; they skip where no browser can be had.
"""

import re
import shutil
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
from browser import (
    chromium,
    jupyter_lab,
    open_notebook,
    run_all_and_wait,
    save,
    screenshot,
    static_server,
    type_into_cell,
    wait_for,
)
from conftest import ROOT

pytestmark = pytest.mark.browser

# Exercise 01 solved in one-line statements, as a student might type them.
SOLUTION = {
    "neuron": [
        "neuron_forward = lambda X, w, b: (X @ w + b).clamp(min=0)",
        "neuron_backward = lambda X, w, b, g: (lambda gv: (gv[:, None] * w[None, :], X.T @ gv, gv.sum()))(g * (X @ w + b > 0).to(g.dtype))",
    ],
    "shared": [
        "shared_forward = lambda x, w: (w * x) ** 2 + (w * x) ** 3",
        "shared_backward = lambda x, w, g: (lambda gu: (gu * w, (gu * x).sum()))(g * (2 * w * x + 3 * (w * x) ** 2))",
    ],
}


@pytest.fixture(scope="module")
def driver():
    browser = chromium()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "lectures", root / "lectures")
    shutil.copytree(ROOT / "exercises", root / "exercises")
    with jupyter_lab(root) as url:
        yield root, url


def errors(notebook) -> list[str]:
    return [f"cell {i}: {o.get('ename')}" for i, c in enumerate(notebook.cells) for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def test_lecture_01_runs_in_jupyterlab_with_its_graphs_as_svg(driver, lab):
    from selenium.webdriver.common.by import By

    root, url = lab
    open_notebook(driver, url("lectures/01_computation_graphs.ipynb"))
    run_all_and_wait(driver)
    graphs = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type=\"image/svg+xml\"]")
    driver.execute_script("window.scrollTo(0, 0); document.querySelector('.jp-WindowedPanel-outer').scrollTop = 1800")
    screenshot(driver, "lecture01-jupyterlab")
    assert len(graphs) >= 5 and all(g.find_elements(By.CSS_SELECTOR, "svg, img") for g in graphs), \
        "the graph pictures should be SVG in the page"
    save(driver)
    ran = nbformat.read(root / "lectures" / "01_computation_graphs.ipynb", as_version=4)
    assert errors(ran) == []
    assert all(c.execution_count for c in ran.cells if c.cell_type == "code")


def test_exercise_01_solved_in_jupyterlab_passes_its_tests_and_validate(driver, lab):
    from selenium.webdriver.common.by import By

    root, url = lab
    path = root / "exercises" / "ex01" / "ex01.ipynb"
    open_notebook(driver, url("exercises/ex01/ex01.ipynb"))
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in SOLUTION:
            type_into_cell(driver, index, "\n".join(SOLUTION[grade_id]))
    run_all_and_wait(driver)
    save(driver)
    solved = nbformat.read(path, as_version=4)
    assert errors(solved) == []
    tests = [c for c in solved.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(tests) == 4 and all(c.execution_count for c in tests)
    screenshot(driver, "ex01-solved-jupyterlab")
    validate = wait_for(lambda: next(b for b in driver.find_elements(By.CSS_SELECTOR, ".jp-Toolbar-item button, .jp-ToolbarButtonComponent")
                                     if "Validate" in b.text), what="nbgrader's Validate button")
    validate.click()
    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-content"), timeout=180, what="Validate's answer")
    wait_for(lambda: "Success" in dialog.text or "fail" in dialog.text.lower(), timeout=180, what="the validation to finish")
    screenshot(driver, "ex01-validate")
    assert "Success! Your notebook passes all the tests." in dialog.text, dialog.text


# ---- the course website


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from autograders import site
    from autograders.course import Course

    built = site.build(Course(ROOT), tmp_path_factory.mktemp("site") / "site")
    return built


def test_the_site_has_every_lecture_and_exercise_with_pictures_math_and_no_broken_link(driver, site):
    from selenium.webdriver.common.by import By

    pages = sorted(p.relative_to(site.folder).as_posix() for p in site.folder.rglob("*.html")
                   if not p.relative_to(site.folder).parts[0].startswith("_"))  # _static/: the theme's own templates
    assert {f"lectures/{p.stem}.html" for p in (ROOT / "lectures").glob("*.ipynb")} <= set(pages)
    assert {f"exercises/{n}/{n}.html" for n in (p.name for p in (ROOT / "exercises").iterdir())} <= set(pages)
    for page in pages:
        text = (site.folder / page).read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, page
    with static_server(site.folder) as base:
        broken = []
        for page in pages:
            for href in re.findall(r'(?:href|src)="([^"#?]+)', (site.folder / page).read_text()):
                target = urlparse(urljoin(f"{base}/{page}", href))
                if target.netloc == urlparse(base).netloc and not (site.folder / target.path.lstrip("/")).exists():
                    broken.append(f"{page} -> {href}")
        assert broken == []
        for page, name in [("index.html", "site-index"), ("lectures/01_computation_graphs.html", "site-lecture01"),
                           ("exercises/ex01/ex01.html", "site-ex01")]:
            driver.get(f"{base}/{page}")
            wait_for(lambda: driver.execute_script("return document.readyState") == "complete", what=page)
            if page != "index.html":
                math = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "mjx-container"), what=f"rendered math in {page}")
                assert math
            images = driver.execute_script(
                "return [...document.images].filter(i => i.src.startsWith(location.origin))"
                ".map(i => [i.src, i.complete && i.naturalWidth > 0])")
            assert all(ok for _, ok in images), [src for src, ok in images if not ok]
            screenshot(driver, name)
        driver.get(f"{base}/lectures/01_computation_graphs.html")
        colab = driver.execute_script("return [...document.querySelectorAll('a')].map(a => a.href).filter(h => h.includes('colab.research.google.com'))")
        from autograders.course import Course

        assert Course(ROOT).public.colab("lectures/01_computation_graphs.ipynb") in colab
    print(f"\nsite: {site.pages} pages, built in {site.seconds:.1f} s")
