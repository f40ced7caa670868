"""The paper's own scripts next to mlopsbench's pipelines, on the same generated inputs.

The paper (Marcos-Mercadé et al.) published its code as the GitHub repository ``Jonmaa/MLOps``.
This runner never copies that code into this repository: it takes a local checkout
(``--paper-repo DIR``: a working tree or a bare clone; without it, it tries ``git clone``), copies
the scripts it runs into a scratch folder *outside* the repository (``--work``), and patches only
what cannot run offline or on MLflow 3, printing every patch:

- the MLflow scripts' hard-coded ``set_tracking_uri("http://...:5000")`` -> a local SQLite store
  (the same kind of store mlopsbench's run uses);
- ``mlflowMain.py``: ``source=mlflow.get_artifact_uri(...)`` -> ``mlflow.last_logged_model()
  .model_uri`` (MLflow 3 keeps models outside the run's artifacts) and the model class the script
  hard-codes (``DeepNN()``) -> the model being measured;
- every ``time.sleep(10)`` is removed (it only waited for a remote registry);
- ``--epochs`` other than the paper's own (5 for MLflow, 10 for Metaflow) -> that number.

Two library patches, printed too, make the paper's code run on today's packages without touching
it: PyPI's torchvision (below), and transformers 5's pickling of models, which the paper's
Metaflow sentiment flow relies on (:data:`PICKLE_FIX`).

Its inputs are made here, offline, and handed to both sides: MNIST-shaped IDX files under
``./data/MNIST/raw/`` (torchvision then skips its download), an ``imdb`` dataset folder (Parquet
splits; ``load_dataset("imdb")`` reads a local folder of that name first) and a full-size
DistilBERT checkpoint trained for a few minutes on synthetic reviews, saved in a folder named
like the real one (``from_pretrained`` reads a local folder of that name first), with the real
one's ``NEGATIVE``/``POSITIVE`` labels. The paper's scripts run in a folder holding links to
them; mlopsbench reads the same files (``--data idx``, ``--data file``, ``--model-path``).

The paper's digits scripts import torchvision, which PyPI ships only as a CUDA build: the runner
unpacks that wheel into the scratch folder and skips its custom-op registrations (printed as a
patch of the library, not of the paper's code), which need its C extension; ``datasets.MNIST``
and ``transforms`` are pure Python.

Each side runs as its users run it, one process tree per run, with one thread
(``OMP_NUM_THREADS=1``), the same environment, and a fresh store: the paper's MLflow scripts with
MLflow's environment, its Metaflow flows with Metaflow's; mlopsbench as
``mlopsbench run <use case> --tool <tool>``. Per run: wall seconds, CPU seconds of the whole
process tree, peak memory (largest resident set of any process of the tree) and accuracy; medians
over ``--repeats`` interleaved repeats (the order alternates), with the load average.

    .venv/bin/python benchmarks/paper_scripts.py --paper-repo ~/MLOps \\
        --scenarios digits-mlflow,sentiment-mlflow,sentiment-metaflow --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PAPER_URL = "https://github.com/Jonmaa/MLOps"
CHECKPOINT_NAME = "distilbert-base-uncased-finetuned-sst-2-english"
SCENARIOS = ("digits-mlflow", "sentiment-mlflow", "sentiment-metaflow", "digits-metaflow")
PAPER_EPOCHS = {"mlflow": 5, "metaflow": 10}
MODEL_CLASSES = {"simple": "SimpleNN", "deep": "DeepNN", "cnn": "CNN_Model"}
INPUTS_VERSION = 1  # bump when the generated inputs change


# ------------------------------------------------------------------------------------------
# the paper's repository
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRepo:
    """A checkout (``tree``) or a bare clone (``git_dir``) of the paper's repository."""

    location: Path
    bare: bool

    def read(self, path: str) -> str:
        if not self.bare:
            return (self.location / path).read_text(encoding="utf-8")
        done = subprocess.run(
            ["git", "--git-dir", str(self.location), "show", f"HEAD:{path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{path} not in {self.location}: {done.stderr.strip()}")
        return done.stdout

    def commit(self) -> str:
        git = (
            ["git", "--git-dir", str(self.location)]
            if self.bare
            else ["git", "-C", str(self.location)]
        )
        done = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or "unknown"


def paper_repo(given: Path | None, work: Path) -> PaperRepo:
    """The checkout given, else a clone in the scratch folder (needs the network)."""
    for candidate in ([given] if given else []) + [work / "paper-repo"]:
        if candidate is None or not candidate.exists():
            continue
        if (candidate / "MLflow").is_dir():
            return PaperRepo(candidate.resolve(), bare=False)
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return PaperRepo(candidate.resolve(), bare=True)
        if (candidate / ".git").is_dir():
            return PaperRepo(candidate.resolve(), bare=False)
        raise SystemExit(f"{candidate} is neither a checkout nor a bare clone of {PAPER_URL}")
    if given is not None:
        raise SystemExit(f"--paper-repo {given} does not exist")
    target = work / "paper-repo"
    print(f"cloning {PAPER_URL} into {target}", flush=True)
    done = subprocess.run(
        ["git", "clone", "--depth", "1", PAPER_URL, str(target)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if done.returncode != 0:
        raise SystemExit(
            f"cannot clone {PAPER_URL} ({done.stderr.strip().splitlines()[-1:]}): "
            "pass --paper-repo DIR, a checkout or a bare clone of it"
        )
    return PaperRepo(target, bare=False)


# ------------------------------------------------------------------------------------------
# patches: only what cannot run offline or on MLflow 3, each one printed
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    why: str
    pattern: str  # a regular expression
    replacement: str
    count: int = 1  # how many matches must exist (0: any number, at least one)


def apply_patches(name: str, text: str, patches: Sequence[Patch], verbose: bool) -> str:
    for patch in patches:
        original = text
        found = re.findall(patch.pattern, text, flags=re.MULTILINE)
        if not found or (patch.count and len(found) != patch.count):
            raise SystemExit(
                f"{name}: expected {patch.count or 'some'} match(es) of {patch.pattern!r} "
                f"({patch.why}), found {len(found)}: is this the paper's version of the script?"
            )
        text = re.sub(patch.pattern, patch.replacement, text, flags=re.MULTILINE)
        if verbose:
            match = re.search(patch.pattern, original, flags=re.MULTILINE)
            before = match.group(0) if match else found[0]
            after = re.sub(patch.pattern, patch.replacement, before, flags=re.MULTILINE)
            print(f"  patch {name}: {patch.why}: {before!r} -> {after!r}")
    return text


def mlflow_patches(store_uri: str) -> list[Patch]:
    return [
        Patch(
            "the hard-coded tracking server -> a local store",
            r'mlflow\.set_tracking_uri\("http://[^"]*"\)',
            f'mlflow.set_tracking_uri("{store_uri}")',
        ),
    ]


NO_SLEEP = Patch(
    "the registry wait is removed", r"time\.sleep\(10\)", "pass  # time.sleep(10) removed", count=0
)


def epochs_patch(pattern: str, epochs: int, paper_default: int) -> list[Patch]:
    if epochs == paper_default:
        return []
    return [Patch(f"epochs {paper_default} -> {epochs}", pattern, f"\\g<1>{epochs}")]


def scripts_for(scenario: str, model: str, epochs: int, store_uri: str) -> dict[str, list[Patch]]:
    """Script path in the paper's repository -> its patches, for one scenario and model."""
    if scenario == "digits-mlflow":
        main = [
            *mlflow_patches(store_uri),
            Patch(
                "MLflow 3 keeps logged models outside the run's artifacts",
                r'source=mlflow\.get_artifact_uri\("mnist_model"\)',
                "source=mlflow.last_logged_model().model_uri",
            ),
            NO_SLEEP,
            *epochs_patch(r"(num_epochs = )5\b", epochs, PAPER_EPOCHS["mlflow"]),
        ]
        if model != "deep":
            main.append(
                Patch(
                    f"the model measured: {MODEL_CLASSES[model]} instead of the hard-coded DeepNN",
                    r"^model = DeepNN\(\)",
                    f"model = {MODEL_CLASSES[model]}()",
                )
            )
        return {"MLflow/mlflowMain.py": main, "MLflow/mlflowTest.py": mlflow_patches(store_uri)}
    if scenario == "sentiment-mlflow":
        return {
            "MLflow/mlflowMain_sentiment.py": [*mlflow_patches(store_uri), NO_SLEEP],
            "MLflow/mlflowTest_sentiment.py": mlflow_patches(store_uri),
        }
    if scenario == "sentiment-metaflow":
        return {"Metaflow/metaflowMain_sentiment.py": []}
    if scenario == "digits-metaflow":
        return {"Metaflow/metaflowMain.py": []}
    raise SystemExit(f"unknown scenario {scenario}")


# ------------------------------------------------------------------------------------------
# generated inputs, shared by both sides
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    root: Path

    @property
    def mnist_raw(self) -> Path:
        return self.root / "data" / "MNIST" / "raw"

    @property
    def imdb(self) -> Path:
        return self.root / "imdb"

    @property
    def reviews(self) -> Path:
        return self.root / "reviews.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_NAME


def _bench_module(name: str) -> Any:
    """A sibling benchmark script as a module (its generators are reused, not copied)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_inputs(work: Path, args: argparse.Namespace, needs: set[str]) -> Inputs:
    inputs = Inputs(work / "inputs")
    stamp_file = inputs.root / "stamp.json"
    stamp = {
        "version": INPUTS_VERSION,
        "mnist": [args.mnist_train, args.mnist_test],
        "reviews": args.reviews,
        "train_reviews": args.train_reviews,
        "seed": args.seed,
    }
    done = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
    if "digits" in needs and done.get("mnist") != stamp["mnist"]:
        make_mnist(inputs, args)
    sentiment_keys = ("reviews", "train_reviews", "seed", "version")
    if "sentiment" in needs and any(done.get(k) != stamp[k] for k in sentiment_keys):
        make_sentiment(inputs, args)
    if needs:
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        merged = {**done, **{k: v for k, v in stamp.items() if k != "mnist" or "digits" in needs}}
        stamp_file.write_text(json.dumps(merged))
    return inputs


def make_mnist(inputs: Inputs, args: argparse.Namespace) -> None:
    """MNIST-shaped IDX files (the bundled digits shifted and noised, see digits_train.py)."""
    from mlopsbench.usecases.digits.config import DigitsDataConfig
    from mlopsbench.usecases.digits.data import load_digits_data, write_idx

    synthetic_mnist = _bench_module("digits_train").synthetic_mnist
    base = load_digits_data(DigitsDataConfig())
    x_train, y_train = synthetic_mnist(base, args.mnist_train, args.seed)
    x_test, y_test = synthetic_mnist(base, args.mnist_test, args.seed + 1)
    raw = inputs.mnist_raw
    raw.mkdir(parents=True, exist_ok=True)
    for stem, array in {
        "train-images-idx3-ubyte": x_train,
        "train-labels-idx1-ubyte": y_train.astype("uint8"),
        "t10k-images-idx3-ubyte": x_test,
        "t10k-labels-idx1-ubyte": y_test.astype("uint8"),
    }.items():
        write_idx(raw / stem, array)
    print(f"inputs: MNIST IDX files, {args.mnist_train} train + {args.mnist_test} test, in {raw}")


def make_sentiment(inputs: Inputs, args: argparse.Namespace) -> None:
    """500 IMDB-like reviews (an ``imdb`` Parquet folder and a JSONL file) and a full-size
    DistilBERT trained on other synthetic reviews, saved like the real checkpoint."""
    import pandas as pd
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from mlopsbench.usecases.sentiment.model import save_classifier
    from mlopsbench.usecases.sentiment.tiny import build_tokenizer

    bench = _bench_module("sentiment_infer")
    texts, labels = bench.synthetic_reviews(args.reviews, args.seed)
    train_texts, train_labels = bench.synthetic_reviews(args.train_reviews, args.seed + 1)
    inputs.root.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"text": texts, "label": labels.astype("int64")})
    inputs.imdb.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(inputs.imdb / "test.parquet", index=False)
    pd.DataFrame({"text": train_texts, "label": train_labels.astype("int64")}).to_parquet(
        inputs.imdb / "train.parquet", index=False
    )
    with inputs.reviews.open("w", encoding="utf-8") as fh:
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            fh.write(json.dumps({"id": f"r{i}", "text": text, "label": int(label)}) + "\n")
    tokenizer = build_tokenizer([*texts, *train_texts])
    torch.manual_seed(args.seed)
    config = DistilBertConfig(
        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1}
    )
    model = DistilBertForSequenceClassification(config)
    train_args = argparse.Namespace(
        train_epochs=4, train_lr=5e-5, train_max_length=64, seed=args.seed
    )
    made = bench.train_full_size(model, tokenizer, train_texts, train_labels, train_args)
    save_classifier(model.eval(), tokenizer, inputs.checkpoint)
    print(f"inputs: {len(texts)} reviews in {inputs.imdb} and {inputs.reviews}; checkpoint {made}")


# ------------------------------------------------------------------------------------------
# torchvision for the paper's digits scripts
# ------------------------------------------------------------------------------------------


def torchvision_site(work: Path, verbose: bool) -> Path:
    """PyPI's torchvision for this torch, unpacked into the scratch folder, importable on CPU."""
    from importlib.metadata import version as installed

    # Read from the metadata, not by importing torch: this process stays small (see main).
    major, minor = (int(x) for x in installed("torch").split("+")[0].split(".")[:2])
    version = f"0.{minor + 15}.0" if major == 2 else None  # torch 2.13 <-> torchvision 0.28
    site = work / f"torchvision-{version}"
    init = site / "torchvision" / "__init__.py"
    if not init.is_file():
        wheels = work / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
             f"torchvision=={version}"],
            check=True,
        )  # fmt: skip
        (wheel,) = wheels.glob(f"torchvision-{version}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    text = init.read_text()
    patched = apply_patches(
        "torchvision/__init__.py (the library, not the paper's code)",
        text,
        [
            Patch(
                "PyPI's CUDA build cannot load its C ops on CPU torch: skip their registration",
                r"from torchvision import \(\n    _autograd_registrations,\n    _meta_registrations,\n",
                "if extension._has_ops():\n"
                "    from torchvision import _autograd_registrations, _meta_registrations\n"
                "from torchvision import (\n",
            )
        ]
        if "if extension._has_ops():" not in text
        else [],
        verbose,
    )
    if patched != text:
        init.write_text(patched)
    elif verbose:
        print(f"  patch torchvision/__init__.py: already applied in {site}")
    return site


# ------------------------------------------------------------------------------------------
# transformers 5 and the paper's Metaflow sentiment flow
# ------------------------------------------------------------------------------------------

# Written to the scratch folder and put on the paper's Metaflow side's PYTHONPATH: a patch of the
# library's pickling, not of the paper's flow (which pickles a transformers pipeline between
# steps). transformers 5 returns hidden states through forward hooks that it installs once per
# model, for the classes registered when a model is constructed: a model unpickled in another
# process is not registered (``output_hidden_states=True`` then returns None), and a hooked model
# cannot be pickled again (the hooks are closures). Pickling drops those hooks, unpickling
# registers the class again; transformers installs the hooks anew on the next call.
PICKLE_FIX = '''"""mlopsbench paper-scripts runner: transformers 5 models survive pickling (see the runner)."""

from collections import OrderedDict

import torch.nn

_setstate = torch.nn.Module.__setstate__


def _capturing(hook):
    return "output_capturing_hook" in getattr(hook, "__qualname__", "")


def __getstate__(self):
    state = self.__dict__.copy()
    hooks = state.get("_forward_hooks") or {}
    if any(_capturing(h) for h in hooks.values()):
        state["_forward_hooks"] = OrderedDict((k, h) for k, h in hooks.items() if not _capturing(h))
    state.pop("_output_capturing_hooks_installed", None)
    return state


def __setstate__(self, state):
    _setstate(self, state)
    if hasattr(type(self), "_can_record_outputs"):
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY

        _CAN_RECORD_REGISTRY[self] = self._can_record_outputs


torch.nn.Module.__getstate__ = __getstate__
torch.nn.Module.__setstate__ = __setstate__
'''


def pickle_fix_site(work: Path, verbose: bool) -> Path | None:
    """A folder with the ``sitecustomize`` above, for transformers >= 5 (None before)."""
    from importlib.metadata import version as installed

    transformers_version = installed("transformers")  # not imported: this process stays small
    if int(transformers_version.split(".")[0]) < 5:
        return None
    site = work / "transformers-pickle-fix"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(PICKLE_FIX)
    if verbose:
        print(
            f"  patch transformers {transformers_version} (the library, not the paper's flow):"
            " a pickled model keeps its hidden-state hooks working in the next Metaflow step"
            f" (sitecustomize.py on PYTHONPATH, {site})"
        )
    return site


# ------------------------------------------------------------------------------------------
# running one side
# ------------------------------------------------------------------------------------------


@dataclass
class Measure:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mb: float = 0.0
    accuracy: float | None = None
    load: list[float] = field(default_factory=list)  # 1-minute load average, start of each step
    ok: bool = True
    note: str = ""


def run_step(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], log: Path, ok_codes: Sequence[int] = (0,)
) -> tuple[Measure, str]:
    """One command: wall, CPU and peak RSS of its whole process tree (wait4's rusage)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    measure = Measure(load=[os.getloadavg()[0]])
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    measure.wall_s = time.perf_counter() - start
    measure.cpu_s = usage.ru_utime + usage.ru_stime
    measure.peak_mb = usage.ru_maxrss / 1024
    text = log.read_text(errors="replace")
    if proc.returncode not in ok_codes:
        measure.ok, measure.note = False, f"exit {proc.returncode}: see {log}"
    return measure, text


def combine(parts: Sequence[Measure]) -> Measure:
    total = Measure()
    for part in parts:
        total.wall_s += part.wall_s
        total.cpu_s += part.cpu_s
        total.peak_mb = max(total.peak_mb, part.peak_mb)
        total.load += part.load
        total.ok = total.ok and part.ok
        total.note = total.note or part.note
        total.accuracy = part.accuracy if part.accuracy is not None else total.accuracy
    return total


PAPER_ACCURACY = [
    (re.compile(r"Precisi\S*n en test: ([\d.]+)%"), 100.0),  # mlflowTest.py
    (re.compile(r"Accuracy on IMDB subset: ([\d.]+)%"), 100.0),  # mlflowTest_sentiment.py
    (re.compile(r"Accuracy: ([\d.]+)%"), 100.0),  # the Metaflow flows
]


def paper_accuracy(text: str) -> float | None:
    for pattern, scale in PAPER_ACCURACY:
        found = pattern.findall(text)
        if found:
            return float(found[-1]) / scale
    return None


@dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    repo: PaperRepo
    inputs: Inputs
    work: Path
    env: dict[str, str]
    mlflow_python: str
    metaflow_python: str
    torchvision: Path | None


def run_paper(ctx: Context, scenario: str, model: str, tag: str, verbose: bool) -> Measure:
    folder = ctx.work / "paper" / tag
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, target in {
        "data": ctx.inputs.root / "data",
        "imdb": ctx.inputs.imdb,
        CHECKPOINT_NAME: ctx.inputs.checkpoint,
    }.items():
        if target.exists():
            (folder / name).symlink_to(target)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    tool = scenario.split("-")[1]
    epochs = ctx.args.epochs or PAPER_EPOCHS[tool]
    env = dict(ctx.env)
    if ctx.torchvision is not None and scenario.startswith("digits"):
        env["PYTHONPATH"] = str(ctx.torchvision)
    if scenario == "sentiment-metaflow":
        fix = pickle_fix_site(ctx.work, verbose)
        if fix is not None:
            env["PYTHONPATH"] = str(fix)
    steps = []
    for path, patches in scripts_for(scenario, model, epochs, store).items():
        script = folder / Path(path).name
        script.write_text(apply_patches(path, ctx.repo.read(path), patches, verbose))
        if tool == "mlflow":
            cmd = [ctx.mlflow_python, script.name]
        else:
            cmd = [ctx.metaflow_python, script.name, "run"]
            if scenario == "digits-metaflow" and epochs != PAPER_EPOCHS["metaflow"]:
                cmd += ["--epochs", str(epochs)]
        measure, text = run_step(cmd, folder, env, folder / f"{script.stem}.log")
        measure.accuracy = paper_accuracy(text) if measure.ok else None
        steps.append(measure)
        if not measure.ok:
            break
    return combine(steps)


def run_ours(ctx: Context, scenario: str, model: str, tag: str, precision: str) -> Measure:
    usecase, tool = scenario.split("-")
    out = ctx.work / "ours" / tag
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [str(REPO / ".venv" / "bin" / "mlopsbench"), "run", usecase, "--tool", tool]
    cmd += ["--out", str(out), "--precision", precision]
    if usecase == "digits":
        epochs = ctx.args.epochs or PAPER_EPOCHS[tool]
        cmd += ["--model", model, "--epochs", str(epochs)]
        cmd += ["--data", "idx", "--data-path", str(ctx.inputs.mnist_raw)]
    else:
        cmd += sentiment_inputs(ctx, truncation_of(scenario))
    # Exit 3: the model missed its quality gate (a result, like the paper's printed failure).
    measure, _ = run_step(cmd, out, ctx.env, out / "run.log", ok_codes=(0, 3))
    records = sorted(out.glob("*/result.json"))
    if records:
        result = json.loads(records[-1].read_text())
        measure.accuracy = result.get("metrics", {}).get("accuracy")
        if result.get("status") not in ("ok", "gate_failed"):
            measure.ok, measure.note = (
                False,
                f"status {result.get('status')}: {result.get('error')}",
            )
    elif measure.ok:
        measure.ok, measure.note = False, f"no result.json in {out}"
    return measure


def truncation_of(scenario: str) -> str:
    """The paper's truncation in that scenario, which our side then uses too: its Metaflow flow
    cuts each review to 512 *characters* (``txt[:512]``), its MLflow scripts to 512 tokens."""
    return "chars" if scenario == "sentiment-metaflow" else "tokens"


def sentiment_inputs(ctx: Context, truncation: str) -> list[str]:
    """Our sentiment options for the shared inputs, at the given truncation."""
    return [
        *("--model-path", str(ctx.inputs.checkpoint), "--data", "file"),
        *("--data-path", str(ctx.inputs.reviews), "--sample", str(ctx.args.reviews)),
        *("--truncation", truncation, "--max-length", "512"),
    ]


def predictions(tag_dir: Path) -> dict[str, str]:
    """id -> predicted label of one of our sentiment runs (its predictions.jsonl)."""
    files = sorted(tag_dir.glob("**/predictions.jsonl"))
    if not files:
        return {}
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    return {str(r["id"]): str(r["pred"]) for r in rows}


# ------------------------------------------------------------------------------------------
# the whole comparison
# ------------------------------------------------------------------------------------------


def prepare_in_child(work: Path, argv: Sequence[str] | None, needs: set[str]) -> Inputs:
    """Make the inputs in a child process (``--prepare-only``), so this one never imports torch
    or holds the data: Linux starts a child's peak RSS (``ru_maxrss``) at its parent's size when
    it forks, so a large runner would inflate every measured side's peak memory."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)]
    subprocess.run([*cmd, "--prepare-only"], check=True)
    return Inputs(work / "inputs")


def tool_python(tool: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mlopsbench"), "env", "python", tool],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def base_env(work: Path) -> dict[str, str]:
    """The same environment for both sides: offline, one thread, no telemetry."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        METAFLOW_USER=os.environ.get("METAFLOW_USER", "mlopsbench"),
        TMPDIR=str(work / "tmp"),
        PYTHONUNBUFFERED="1",
    )
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def jobs(args: argparse.Namespace) -> list[tuple[str, str]]:
    out = []
    for scenario in args.scenario_list:
        if scenario == "digits-mlflow":
            out += [(scenario, m) for m in args.model_list]
        elif scenario == "digits-metaflow":
            out.append((scenario, "deep"))  # the paper's flow trains (and plots) DeepNN only
        else:
            out.append((scenario, "distilbert"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work.resolve()
    if work == REPO or REPO in work.parents:
        raise SystemExit(f"--work {work} is inside the repository: use a folder outside it")
    work.mkdir(parents=True, exist_ok=True)
    repo = paper_repo(args.paper_repo, work)
    print(f"paper: {repo.location} (commit {repo.commit()}); scratch: {work}", flush=True)
    needs = {s.split("-")[0] for s in args.scenario_list}
    if args.prepare_only:
        make_inputs(work, args, needs)
        return 0
    inputs = prepare_in_child(work, argv, needs)
    tv = torchvision_site(work, verbose=True) if "digits" in needs else None
    ctx = Context(
        args=args,
        repo=repo,
        inputs=inputs,
        work=work,
        env=base_env(work),
        mlflow_python=tool_python("mlflow")
        if any("mlflow" in s for s in args.scenario_list)
        else "",
        metaflow_python=tool_python("metaflow")
        if any("metaflow" in s for s in args.scenario_list)
        else "",
        torchvision=tv,
    )
    results: dict[str, dict[str, list[Measure]]] = {}
    printed: set[str] = set()
    for rep in range(args.repeats):
        for index, (scenario, model) in enumerate(jobs(args)):
            key = f"{scenario}:{model}"
            sides = ["paper", "ours"] if (rep + index) % 2 == 0 else ["ours", "paper"]
            for side in sides:
                tag = f"{scenario}-{model}-{side}-{rep + 1}"
                if side == "paper":
                    m = run_paper(ctx, scenario, model, tag, verbose=key not in printed)
                    printed.add(key)
                else:
                    m = run_ours(ctx, scenario, model, tag, args.precision)
                results.setdefault(key, {}).setdefault(side, []).append(m)
                print(
                    f"repeat {rep + 1} {key} {side}: {m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, "
                    f"peak {m.peak_mb:.0f} MB, accuracy {_fmt(m.accuracy, 4)}, "
                    f"load {statistics.fmean(m.load):.2f}{'' if m.ok else ' FAILED ' + m.note}",
                    flush=True,
                )
    labels = fp32_labels(ctx, results) if args.fp32_check and "sentiment" in needs else {}
    summary = report(results, labels, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "paper_commit": repo.commit(),
            "runs": {
                k: {s: [asdict(m) for m in ms] for s, ms in v.items()} for k, v in results.items()
            },
            "summary": summary,
            "labels_vs_fp32": labels,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(m.ok for v in results.values() for ms in v.values() for m in ms) else 1


def fp32_labels(ctx: Context, results: dict[str, dict[str, list[Measure]]]) -> dict[str, Any]:
    """Our sentiment runs' predicted labels against one fp32 run of the same inputs (at the
    scenario's truncation)."""
    if ctx.args.precision == "fp32":
        return {}
    out: dict[str, Any] = {}
    for key in results:
        if not key.startswith("sentiment"):
            continue
        scenario = key.split(":")[0]
        truth = predictions(fp32_reference(ctx, truncation_of(scenario)))
        same = []
        for rep in range(ctx.args.repeats):
            mine = predictions(ctx.work / "ours" / f"{scenario}-distilbert-ours-{rep + 1}")
            if mine and truth:
                same.append(sum(mine[i] == truth.get(i) for i in mine) / len(mine))
        out[key] = {"identical_fraction": same, "reviews": len(truth)}
    return out


def fp32_reference(ctx: Context, truncation: str) -> Path:
    """One plain fp32 run of the shared inputs at ``truncation`` (made once per scratch)."""
    reference = ctx.work / "ours" / f"sentiment-plain-fp32-{truncation}"
    if not predictions(reference):
        shutil.rmtree(reference, ignore_errors=True)
        reference.mkdir(parents=True)
        cmd = [str(REPO / ".venv" / "bin" / "mlopsbench"), "run", "sentiment", "--tool", "plain"]
        cmd += ["--out", str(reference), "--precision", "fp32", *sentiment_inputs(ctx, truncation)]
        m, _ = run_step(cmd, reference, ctx.env, reference / "run.log")
        print(f"fp32 reference (plain, {truncation}): {m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU")
    return reference


def report(
    results: dict[str, dict[str, list[Measure]]], labels: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    print()
    print(
        f"{'scenario':<26} {'side':<6} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
        f"{'accuracy':>9} {'load':>5} {'wall ×':>7} {'CPU ×':>6}"
    )
    summary: dict[str, Any] = {}
    loads: list[float] = []
    for key, sides in results.items():
        row: dict[str, Any] = {}
        for side in ("paper", "ours"):
            ms = sides.get(side, [])
            if not ms:
                continue
            row[side] = {
                "wall_s": statistics.median(m.wall_s for m in ms),
                "cpu_s": statistics.median(m.cpu_s for m in ms),
                "peak_mb": statistics.median(m.peak_mb for m in ms),
                "accuracy": _median([m.accuracy for m in ms]),
                "load": statistics.fmean(x for m in ms for x in m.load),
                "all_wall_s": [round(m.wall_s, 2) for m in ms],
                "ok": all(m.ok for m in ms),
            }
            loads += [x for m in ms for x in m.load]
        if "paper" in row and "ours" in row:
            row["wall_ratio"] = row["paper"]["wall_s"] / row["ours"]["wall_s"]
            row["cpu_ratio"] = row["paper"]["cpu_s"] / row["ours"]["cpu_s"]
            row["peak_ratio"] = row["ours"]["peak_mb"] / row["paper"]["peak_mb"]
        for side in ("paper", "ours"):
            if side not in row:
                continue
            r = row[side]
            ratio = (
                f"{row['wall_ratio']:>6.2f}x {row['cpu_ratio']:>5.2f}x"
                if side == "ours" and "wall_ratio" in row
                else ""
            )
            print(
                f"{key:<26} {side:<6} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['peak_mb']:>8.0f} "
                f"{_fmt(r['accuracy'], 4):>9} {r['load']:>5.2f} {ratio}"
                f"{'' if r['ok'] else '  FAILED'}"
            )
        summary[key] = row
    print(
        f"medians of {args.repeats} interleaved repeat(s), one thread per side; load average "
        f"(1 min, 2 cores) during the runs: mean {_fmt(statistics.fmean(loads) if loads else None)}, "
        f"max {_fmt(max(loads) if loads else None)}"
    )
    for key, found in labels.items():
        print(
            f"{key}: predicted labels identical to an fp32 run on "
            f"{', '.join(f'{100 * x:.1f} %' for x in found['identical_fraction'])} "
            f"of {found['reviews']} reviews (each repeat)"
        )
    return summary


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper-repo", type=Path, default=None, help="checkout or bare clone")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mlopsbench-paper-scripts",
        help="scratch folder outside the repository (inputs, copied scripts, runs)",
    )
    parser.add_argument("--scenarios", default="digits-mlflow,sentiment-mlflow,sentiment-metaflow")
    parser.add_argument("--models", default="simple,deep,cnn", help="digits-mlflow models")
    parser.add_argument("--epochs", type=int, default=None, help="default: each script's own")
    parser.add_argument("--precision", default="auto", help="mlopsbench's --precision")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mnist-train", type=int, default=60_000)
    parser.add_argument("--mnist-test", type=int, default=10_000)
    parser.add_argument("--reviews", type=int, default=500, help="even: half per class")
    parser.add_argument("--train-reviews", type=int, default=256, help="to train the checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fp32-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare our sentiment labels with one fp32 run (plain tool)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--prepare-only", action="store_true", help="make the inputs, run nothing")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [s for s in args.scenario_list if s not in SCENARIOS]
    bad += [m for m in args.model_list if m not in MODEL_CLASSES]
    if bad or args.repeats < 1 or args.reviews < 2 or args.reviews % 2:
        parser.error(f"unknown {bad} (scenarios: {', '.join(SCENARIOS)}), or bad numbers")
    return args


if __name__ == "__main__":
    sys.exit(main())
