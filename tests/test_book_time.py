"""benchmarks/book_time.py: the FLOP count it rates training by, and its reading of
papermill's cell timings."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_time", ROOT / "benchmarks" / "book_time.py")
book_time = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_time)


def test_analytic_lenet5_flops_match_torch_flop_counter():
    fl = book_time.lenet5_flops_per_sample()
    assert fl["agree"], fl
    assert fl["flop_counter_train_step"] == fl["train_step"]
    # backward = weight gradients (as forward) + input gradients of all layers but conv1
    assert fl["forward"] < fl["backward"] < 2 * fl["forward"]


def test_notebook_timing_reads_papermill_cell_durations(tmp_path):
    cells = [{"cell_type": "code", "source": ["# comment\n", f"step_{i}()\n"],
              "metadata": {"papermill": {"duration": d}}} for i, d in enumerate([0.5, 7.25, 2.0])]
    cells.append({"cell_type": "markdown", "source": "x", "metadata": {"papermill": {"duration": 9}}})
    nb = {"cells": cells, "metadata": {"papermill": {"duration": 10.0},
                                       "recos_book": {"training_s": 6.5}}}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    t = book_time.notebook_timing(tmp_path / "nb.ipynb", top=2)
    assert t["papermill_s"] == 10.0 and t["code_cells_s"] == 9.75 and t["training_s"] == 6.5
    assert [(c["cell"], c["seconds"], c["code"]) for c in t["slowest_cells"]] == \
        [(1, 7.25, "step_1()"), (2, 2.0, "step_2()")]


def test_a_cell_that_trains_is_named_by_its_training_line():
    src = ["# load, then train\n", "test = load_dataset('mnist', 'test')\n",
           "models = train_all(specs)\n", "acc = evaluate(models[0], test)\n"]
    assert book_time._first_line(src) == "models = train_all(specs)"
    assert book_time._first_line("x = 1\ny = f(x)") == "x = 1"


def test_report_says_when_the_target_is_not_assessed():
    run = {"mode": "quick", "device": "cpu", "only": ["01"], "returncode": 0, "wall_s": 50.0,
           "chapters": {"01_recos_model": {"wall_s": 40.0, "papermill_s": 39.0,
                                           "slowest_cells": []}}, "build_and_overhead_s": 10.0}
    md = book_time.markdown({"book": {"quick": run}})
    assert "not assessed" in md and "## Full book\n\nNot measured yet." in md
    run = dict(run, only="all", wall_s=91.0)
    assert "**over** the target of 90 s" in book_time.markdown({"book": {"quick": run}})
    run = dict(run, wall_s=90.0)
    assert "within the target of 90 s" in book_time.markdown({"book": {"quick": run}})
