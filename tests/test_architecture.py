"""The lab's structure holds: the settings and the CLI load without torch (start-up stays fast), and the
import layers hold (`make lint` runs import-linter's contract from pyproject.toml; this checks it too, so
a broken layer also fails a plain pytest run)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_the_presets_and_lab_help_load_no_torch():
    assert not {"torch", "transformers", "trl"} & loaded_after("import lab.presets; lab.presets.get_preset('gpu')")
    help_run = "sys.argv = ['lab', '--help']\nfrom lab.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    loaded = loaded_after(help_run)
    assert "typer" in loaded and not {"torch", "transformers", "trl"} & loaded


def test_imports_go_one_way_layer_by_layer():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 kept, 0 broken" in proc.stdout


PACKAGES = ("lab", "tasks", "rewards", "evals", "reports")


def import_graph():
    import grimp

    # every import counts: at the top, inside functions, and under TYPE_CHECKING
    return grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=False)


def cycles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_cycles_counting_every_import():
    assert cycles(import_graph()) == []


def test_cycles_finds_a_cycle():  # the check above cannot pass for want of seeing one
    import grimp

    graph = grimp.ImportGraph()
    for a, b in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=a, imported=b)
    assert cycles(graph) == [["a", "b", "c"]]


def test_only_the_layers_above_the_presets_import_them():
    allowed = {"lab.pipeline", "lab.replicate", "lab.chat_session", "reports.report", "lab.cli.main",
               "lab.cli.experiments", "lab.cli.options", "lab.cli.bench"}
    assert set(import_graph().find_modules_that_directly_import("lab.presets")) <= allowed


def test_no_python_file_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for package in (*PACKAGES, "scripts") for p in (ROOT / package).rglob("*.py")
            if "examples" not in p.parts and (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
