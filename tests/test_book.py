"""The chapters as notebooks: clean sources, documented parameters, executed in quick mode,
rendered with warnings as errors, glued numbers present."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = {"QUICK", "DEVICE", "SEED", "DATA_DIR", "RESULTS_DIR"}


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a chapter needs exactly one cell tagged parameters"
    return cells[0]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_source_is_clean_and_parameters_are_documented_literals(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, "commit notebooks without outputs"
            assert "sys.path" not in c.source and "os.chdir" not in c.source
    cell = parameters_cell(nb)
    tree = ast.parse(cell.source)
    names = set()
    lines = cell.source.splitlines()
    values = {}
    for stmt in tree.body:
        # NAME: type = literal  # comment   (the type is what papermill --help-notebook shows)
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), \
            ast.unparse(stmt)
        value = ast.literal_eval(stmt.value)  # literals only
        name = stmt.target.id
        kind = ast.literal_eval(stmt.annotation) if isinstance(stmt.annotation, ast.Constant) \
            else stmt.annotation.id
        expected = "Optional[str]" if value is None else type(value).__name__
        assert kind == expected, f"{name}: annotated {kind}, value {value!r}"
        assert name.isupper(), name
        assert "#" in lines[stmt.lineno - 1], f"parameter {name} needs a comment"
        names.add(name)
        values[name] = value
    assert REQUIRED <= names
    assert values["QUICK"] is False


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_papermill_help_lists_every_parameter_with_its_type_and_comment(path):
    out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(path)],
                         capture_output=True, text=True, check=True).stdout
    cell = parameters_cell(nbformat.read(path, as_version=4))
    assert "Unknown type" not in out
    for line in cell.source.splitlines():
        if "=" in line and not line.startswith("#"):
            decl, comment = line.split("=", 1)[0], line.split("#", 1)[1].strip()
            name, kind = (part.strip().strip('"') for part in decl.split(":"))
            assert f"{name}: {kind} (default" in out and comment[:30] in out


def test_every_chapter_executes_and_the_book_builds(quick_book):
    for path in CHAPTERS:
        executed = quick_book / "executed" / path.name
        nb = nbformat.read(executed, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert not errors
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and all("remove-cell" in c.metadata.tags for c in injected)
        results = json.loads((quick_book / "results" / f"{path.stem}.json").read_text())
        assert results, path.stem
        html = (quick_book / "html" / "book" / f"{path.stem}.html").read_text()
        assert "{glue" not in html and "glue:text" not in html
        assert "injected-parameters" not in html
    assert (quick_book / "html" / "index.html").is_file()
    timings = json.loads((quick_book / "timings.json").read_text())
    assert set(timings["seconds"]) == {p.stem for p in CHAPTERS}


def _summaries(obj, n_seeds=None, path=""):
    """(path, n, seeds in scope) of every mean +- std summary in a results file."""
    if isinstance(obj, dict):
        if isinstance(obj.get("seeds"), list):
            n_seeds = len(obj["seeds"])
        elif isinstance(obj.get("protocol"), dict) and "n_seeds" in obj["protocol"]:
            n_seeds = obj["protocol"]["n_seeds"]
        if "n" in obj and any(k.startswith("std") for k in obj):
            yield path, obj["n"], n_seeds
        for k, v in obj.items():
            yield from _summaries(v, n_seeds, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _summaries(v, n_seeds, f"{path}[{i}]")


def test_every_mean_is_over_the_chapters_seeds(quick_book):
    """A mean +- std is over exactly the seeds the chapter says it ran (no model counted
    twice or borrowed from another experiment)."""
    checked = 0
    for path in CHAPTERS:
        results = json.loads((quick_book / "results" / f"{path.stem}.json").read_text())
        for where, n, n_seeds in _summaries(results):
            if n_seeds is not None:
                assert n == n_seeds, f"{path.stem}{where}: mean over {n} models, {n_seeds} seed(s)"
                checked += 1
    assert checked >= 10


def _page_text(html: str) -> str:
    import html as h
    return h.unescape(re.sub(r"<[^>]+>", "", html))


def test_chapter1_numbers_are_glued_from_its_results(quick_book):
    r = json.loads((quick_book / "results" / "01_recos_model.json").read_text())
    text = _page_text((quick_book / "html" / "book" / "01_recos_model.html").read_text())
    checks = r["conv_relu_equals_recos"]
    scale = checks["relu1_max_response"]
    assert checks["conv1_max_abs_err"] < 1e-5 * scale and checks["conv2_max_abs_err"] < 1e-5 * scale
    assert r["augmented"]["flat_patch_max_response"] < 1e-9
    assert 0 < r["conv1_frac_zeroed"] < 1
    assert r["quick"] is True
    # the prose shows the numbers from the results file, formatted as in the notebook
    assert f"{r['lenet5']['test_acc']:.2%}" in text
    assert f"{r['conv1_frac_zeroed']:.1%}" in text
    assert f"{r['conv_relu_equals_recos']['conv2_max_abs_err']:.1e}" in text
    assert "{glue" not in text


def test_every_figure_has_an_opaque_background(quick_book):
    """Dark mode (issue 26): a figure with transparent pixels shows black text on the dark
    theme's background; every image the book renders must be opaque."""
    from PIL import Image

    images = sorted((quick_book / "html" / "_images").glob("*.png"))
    assert len(images) >= 20                                  # the chapters' figures are there
    see_through = []
    for path in images:
        im = Image.open(path)
        if im.mode in ("RGBA", "LA", "P") or "transparency" in im.info:
            if im.convert("RGBA").getchannel("A").getextrema()[0] < 255:
                see_through.append(path.name)
    assert not see_through, f"figures with transparent pixels: {see_through}"


def test_no_chapter_hard_codes_a_device():
    """The device path (issue 25): chapters and their modules follow DEVICE; none calls
    .cuda() or names "cuda:0" itself, so DEVICE=cpu runs anywhere and DEVICE=cuda on a GPU."""
    sources = [(p.name, "".join(c["source"])) for p in CHAPTERS
               for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"]
    sources += [(p.name, p.read_text()) for p in (ROOT / "recos_utils").rglob("*.py")]
    bad = [name for name, src in sources if re.search(r"\.cuda\(|['\"]cuda:\d", src)]
    assert not bad, bad
