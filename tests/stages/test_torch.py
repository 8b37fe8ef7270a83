"""The `torch` stage trains: the baseline's losses in float64, `tensor`'s batches, lower
precisions within measured bounds, torch.compile equal to eager, and options that a
machine cannot run refused in one line before any work.

Skipped as a whole where PyTorch is not installed (pip install -e ".[torch]").
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the torch stage needs PyTorch")

from helpers import CFG, assert_close, baseline_grads, flat_list, make_prints, setup  # noqa: E402

from microgpt import stages  # noqa: E402
from microgpt.config import GPTConfig  # noqa: E402
from microgpt.tools import report, timing  # noqa: E402
from microgpt.tools.cli import main  # noqa: E402
from microgpt.train import Run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_100 = ROOT / "tests" / "reference" / "baseline_100_steps.json"
TOLERANCE = 1e-12  # float64: summation order may differ, nothing else
SHAPE = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)  # not microgpt's
CPU = {"device": "cpu"}

# Lower precisions against float64, the largest difference of any of 100 losses at the
# default shape (seed 42; measured on this code: float32 3.6e-7 one name per step and
# 4.7e-7 with 32 names; bfloat16 2.1e-2 and 2.0e-3). float32 rounds each result to 24
# bits (6e-8 relative) and bfloat16's products to 8 bits (4e-3 relative); the
# differences grow a little over training, as Adam turns a gradient's rounding into a
# step. The bounds are ten times the measured figures, far below what a wrong
# computation gives (an untrained model's loss moves by 0.5 over these steps).
PRECISION_BOUNDS = {"float32": 5e-6, "bfloat16": 0.1}


@pytest.fixture(scope="module")
def torch_stage():
    return stages.load("torch")


def losses(docs, module, steps, batch_size=None, cfg=GPTConfig(), options=None):
    run = Run(docs, module, cfg=cfg, options=options)
    return [loss for _, loss in run.train(steps, batch_size)], run


def largest_difference(a, b):
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------
# float64: the baseline's numbers


@pytest.fixture(scope="module")
def baseline_at(names_docs, quiet_gc):
    """The baseline's 100 losses and 5 names at a shape (the default shape from the file
    the baseline wrote, see tests/test_stages.py)."""

    def run(cfg):
        if cfg == GPTConfig():
            reference = json.loads(REFERENCE_100.read_text())
            return reference["losses"], reference["samples"][:5]
        with quiet_gc():
            baseline_losses, run = losses(names_docs, stages.load("baseline"), 100, cfg=cfg)
            return baseline_losses, run.sample(5)

    return run


@pytest.mark.heavy
@pytest.mark.parametrize("cfg", [GPTConfig(), SHAPE], ids=["default", "2x8x2-block6"])
def test_float64_equals_the_baseline_at_every_step(names_docs, torch_stage, baseline_at, cfg):
    expected_losses, expected_names = baseline_at(cfg)
    got, run = losses(names_docs, torch_stage, 100, cfg=cfg, options=CPU)
    assert largest_difference(got, expected_losses) <= TOLERANCE
    assert run.sample(5) == expected_names


@pytest.mark.parametrize("cfg", [GPTConfig(), SHAPE], ids=["default", "2x8x2-block6"])
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batches_equal_tensors_in_float64(names_docs, torch_stage, cfg, batch_size):
    """The one batched algorithm (padded, masked, averaged over every real token)."""
    tensor = stages.load("tensor")
    expected, _ = losses(names_docs, tensor, 30, batch_size, cfg)
    got, _ = losses(names_docs, torch_stage, 30, batch_size, cfg, CPU)
    assert largest_difference(got, expected) <= TOLERANCE


def test_padding_changes_nothing_but_the_mean(torch_stage, names_docs):
    """A batch's loss is the mean over every real token, whatever the padding: the same
    names with one long name added move the loss only through that name's tokens."""
    run = Run(names_docs, torch_stage, options=CPU)
    names = [run.tokenizer.encode(name) for name in ("al", "bo", "maximiliano")]
    model = run.model
    with torch.no_grad():
        per_name = [float(model.loss(tokens)) for tokens in names]
        ids, targets = model.batch_tensors(names)
        whole = float(model.net(ids, targets)) / int((targets != -1).sum())
    counts = [len(tokens) - 1 for tokens in names]
    expected = sum(loss * n for loss, n in zip(per_name, counts)) / sum(counts)
    assert whole == pytest.approx(expected, abs=TOLERANCE)


# ---------------------------------------------------------------------------------------
# float32 and bfloat16 against float64


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_lower_precisions_stay_near_float64(names_docs, torch_stage, dtype, batch_size):
    reference, _ = losses(names_docs, torch_stage, 100, batch_size, options=CPU)
    got, run = losses(names_docs, torch_stage, 100, batch_size, options={**CPU, "dtype": dtype})
    difference = largest_difference(got, reference)
    assert difference <= PRECISION_BOUNDS[dtype]
    assert difference > 1e-9  # the run really was in another precision
    assert {p.dtype for p in run.model.params} == {torch.float32}  # bfloat16: float32 weights
    assert all(len(name) < 20 for name in run.sample(5))


def test_bfloat16_rounds_the_products_not_only_the_weights(names_docs, torch_stage):
    """bfloat16 is not float32 under another name: the first step's loss (the same
    weights in every precision) moves far more (measured: 1.5e-7 in float32, 6.5e-5 in
    bfloat16, 8 names)."""
    first = {}
    for dtype in ("float64", "float32", "bfloat16"):
        first[dtype], _ = losses(names_docs, torch_stage, 1, 8, options={**CPU, "dtype": dtype})
    float32, bfloat16 = (abs(first[d][0] - first["float64"][0]) for d in ("float32", "bfloat16"))
    assert 0 < float32 < 1e-6
    assert bfloat16 > 50 * float32


# ---------------------------------------------------------------------------------------
# torch.compile


@pytest.mark.slow  # the first build takes a minute of CPU (inductor writes and compiles C++)
def test_compile_equals_eager_in_float64(names_docs, torch_stage):
    eager, eager_run = losses(names_docs, torch_stage, 20, 8, options=CPU)
    compiled, run = losses(names_docs, torch_stage, 20, 8, options={**CPU, "compile": True})
    assert largest_difference(compiled, eager) <= TOLERANCE
    assert run.sample(5) == eager_run.sample(5)


def cli(args, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "microgpt", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def test_compile_without_a_compiler_is_one_line_exit_2(tmp_path, names_path):
    args = ["--stage", "torch", "--compile", "--steps", "2", "--data", str(names_path)]
    result = cli(args, tmp_path, CXX=str(tmp_path / "no-such-g++"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1
    assert "--compile on the CPU needs a C++ compiler" in result.stderr


@pytest.mark.slow  # dynamo traces the model before the compiler fails
def test_compile_with_a_broken_compiler_is_one_line(tmp_path, names_path):
    """A compiler that answers --version but cannot build fails the first step, in one line."""
    fake = tmp_path / "g++"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "g++ 1.0" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    args = ["--stage", "torch", "--compile", "--batch-size", "4", "--steps", "2"]
    result = cli(
        args + ["--data", str(names_path)],
        tmp_path,
        CXX=str(fake),
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"),  # nothing built before
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("microgpt: error: torch.compile could not build the model")
    assert result.stderr.rstrip().endswith("run without --compile")


# ---------------------------------------------------------------------------------------
# options: where they reach the model, and where they are refused


def test_auto_is_cuda_when_present_else_cpu(torch_stage):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch_stage.check_options("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_one_line_exit_2(tmp_path, names_path):
    result = cli(["--stage", "torch", "--device", "cuda", "--data", str(names_path)], tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1
    assert "device cuda is not available here" in result.stderr


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none_is_refused(torch_stage):
    with pytest.raises(torch_stage.UnavailableOption, match="device mps is not available"):
        torch_stage.Model(GPTConfig(), 27, {}, device="mps")


@pytest.mark.parametrize("flag", [["--device", "cpu"], ["--dtype", "float32"], ["--compile"]])
@pytest.mark.parametrize("stage", ["tensor", "flat"])
def test_engine_flags_need_the_torch_stage(capsys, flag, stage):
    with pytest.raises(SystemExit) as exc:
        main(["--stage", stage, *flag, "--steps", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{flag[0]} needs a stage that takes it (torch), not {stage}" in err


@pytest.mark.parametrize("args", [["--device", "gpu"], ["--dtype", "float16"]])
def test_unknown_device_or_dtype_is_one_line_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["--stage", "torch", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err


def cli_output(argv, capsys):
    assert main(argv) == 0
    return capsys.readouterr().out


def test_the_command_line_trains_torch_on_batches_as_tensor(names_path, capsys):
    """`--stage torch --batch-size 8` prints `tensor`'s losses and names."""
    args = ["--batch-size", "8", "--steps", "20", "--samples", "5", "--data", str(names_path)]
    expected = cli_output(["--stage", "tensor", *args], capsys)
    assert cli_output(["--stage", "torch", "--device", "cpu", *args], capsys) == expected
    assert cli_output(["--stage", "torch", "--dtype", "float64", *args], capsys) == expected


def test_dtype_reaches_the_model(names_path, capsys, monkeypatch, torch_stage):
    built = []
    original = torch_stage.Model.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append((self.device.type, self.dtype, self.weight_dtype, self.compiled))

    monkeypatch.setattr(torch_stage.Model, "__init__", spy)
    args = ["--stage", "torch", "--dtype", "bfloat16", "--device", "cpu", "--steps", "3"]
    out = cli_output(args + ["--samples", "2", "--data", str(names_path)], capsys)
    assert built == [("cpu", "bfloat16", torch.float32, False)]
    assert out.count("sample ") == 2


def test_checkpoint_of_a_float32_run_samples_with_every_stage(names_path, tmp_path, capsys):
    ckpt = tmp_path / "model.json"
    args = ["--stage", "torch", "--dtype", "float32", "--steps", "5", "--samples", "3"]
    trained = cli_output(args + ["--data", str(names_path), "--save", str(ckpt)], capsys)
    saved = json.loads(ckpt.read_text())
    assert saved["stage"] == "torch" and saved["config"] == GPTConfig().to_dict()
    for stage in ("torch", "flat"):
        sampled = cli_output(["sample", "--load", str(ckpt), "--stage", stage], capsys)
        assert sampled.count("sample ") == 20
    assert trained.count("sample ") == 3


# ---------------------------------------------------------------------------------------
# the registry, and PyTorch staying optional


def test_registry_says_torch_batches_takes_options_and_runs_data_parallel():
    torch_entry = stages.BY_NAME["torch"]
    assert torch_entry.batched and torch_entry.parallel
    assert torch_entry.options == ("device", "dtype", "compile")
    assert [s.name for s in stages.STAGES if s.options or s.parallel] == ["torch"]


def test_the_package_and_its_command_line_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "import microgpt, microgpt.stages, microgpt.tools.cli, microgpt.tools.distributed\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    microgpt.tools.cli.main(['stages'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------
# the benchmark scripts: gpu_check.py (which this machine can run only in part), torch_cpu.py


def script(name):
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script runs")
def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_0():
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("gpu_check: no CUDA GPU here (PyTorch ")


def test_crossover_is_the_narrowest_width_from_which_the_gpu_stays_faster():
    crossover = script("gpu_check").crossover
    assert crossover([(16, 10, 5), (32, 10, 11), (64, 10, 9), (128, 10, 20), (256, 9, 30)]) == 128
    assert crossover([(16, 10, 11), (32, 10, 12)]) == 16
    assert crossover([(16, 10, 9), (32, 10, 11), (64, 10, 8)]) is None


def test_gpu_check_runs_its_cuda_path_with_the_cpu_standing_in(monkeypatch, capsys, names_path):
    """Every section of the CUDA path, on small sizes, with the CPU in the GPU's place (the
    same device: float64 differs by nothing)."""
    check = script("gpu_check")
    monkeypatch.setattr(check, "GPU", "cpu")
    monkeypatch.setattr(check, "WIDTHS", (16, 32))
    monkeypatch.setattr(check, "BATCHES", (4,))
    monkeypatch.setattr(check, "LARGE", GPTConfig(n_layer=2, n_embd=32, n_head=4))
    monkeypatch.setattr(check, "LARGE_BATCH", 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a CPU standing in")
    assert check.main(["--data", str(names_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("a CPU standing in, PyTorch ")
    assert out[1] == f"names: {names_path} (32033)"
    assert out[4:6] == [
        "   1 layer(s) x 16: largest difference 0.00e+00, equal",
        "   2 layer(s) x 64: largest difference 0.00e+00, equal",
    ]
    measured = [line.split() for line in out[9:11]]
    assert [row[:2] for row in measured] == [["16", "4"], ["32", "4"]]
    assert out[11].startswith("   batch 4: the GPU overtakes the CPU ")
    assert out[13] == "3. 2 layers x 32, batch 4: training tokens/s (ms/step)"
    assert [line.split()[:2] for line in out[14:]] == [
        ["GPU", "float64"],
        ["GPU", "float32"],
        ["GPU", "bfloat16"],
        ["CPU", "float32"],
    ]


def test_the_cpu_benchmark_writes_its_section_and_the_readme_table(
    monkeypatch, capsys, names_path, tmp_path
):
    """benchmarks/torch_cpu.py as documented, on a small shape and without compiling: the
    record keeps the stages' figures and gains the section; the README its table."""
    bench = script("torch_cpu")
    monkeypatch.setattr(bench, "SHAPES", {"small": SHAPE})
    record_path, readme_path = tmp_path / "rec.json", tmp_path / "README.md"
    shutil.copy(report.RECORD_PATH, record_path)
    markers = report.TE_MARKERS
    readme_path.write_text(f"before\n{markers[0]}\nold\n{markers[1]}\nafter\n")
    args = ["--data", str(names_path), "--rounds", "2", "--no-compile"]
    args += ["--record", str(record_path), "--update-readme", str(readme_path)]
    assert bench.main(args) == 0
    record = report.read_record(record_path)
    assert record["stages"] == report.read_record(report.RECORD_PATH)["stages"]
    rows = record["torch_engines"]["rows"]
    engines = ["tensor", "torch float64", "torch float32"]
    assert [(r["batch"], r["engine"]) for r in rows] == [
        (batch, engine) for batch in (1, 32) for engine in engines
    ]
    assert all(r["cpu_ms_per_step"] > 0 and len(r["cpu_s_rounds"]) == 2 for r in rows)
    assert [r["cpu_vs_tensor"] for r in rows][::3] == [1.0, 1.0]
    table = report.render_torch_engines(record["torch_engines"])
    assert capsys.readouterr().out == table
    assert record["torch_engines"]["settle_s"] == timing.SETTLE_S
    assert f"each after {timing.SETTLE_S:g} s untimed, for the last cell's BLAS" in table
    readme = readme_path.read_text()
    assert readme == f"before\n{markers[0]}\n{table}{markers[1]}\nafter\n"


def test_make_readme_torch_engines_runs_the_benchmark_into_the_record_and_readme():
    """The command the Makefile runs is the one the test above runs, with the repository's
    record and README."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    printed = make_prints("readme-torch-engines")
    (line,) = [line for line in printed if "benchmarks/torch_cpu.py" in line]
    assert line.split()[1:] == [
        "benchmarks/torch_cpu.py",
        "--rounds",
        "5",
        "--record",
        "microgpt/tools/record.json",
        "--update-readme",
        "README.md",
    ]


def test_the_cpu_benchmark_refuses_a_readme_without_its_markers(tmp_path, capsys):
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(SystemExit) as exc:
        script("torch_cpu").main(["--update-readme", str(tmp_path / "README.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no <!-- torch-engines:start -->" in err.splitlines()[-1]


# ---------------------------------------------------------------------------------------
# the float64 oracle: one whole training step of the baseline against PyTorch


def test_one_baseline_training_step_matches_torch():
    """All 4192 gradients of the scalar `Value` model, then the Adam update, against torch."""
    torch_oracle = stages.load("torch")
    tok, weights = setup()
    tokens = tok.encode("olivia")
    base_loss, base_grad, baseline = baseline_grads(weights, tok.vocab_size, tokens)
    assert len(base_grad) == 4192
    loss, grads = torch_oracle.loss_and_grads(CFG, tok.vocab_size, weights, tokens)
    assert base_loss == pytest.approx(loss, abs=1e-13)
    assert_close(base_grad, flat_list(grads, tok.vocab_size))

    baseline.optimizer.step(0, 1000)
    model = torch_oracle.Model(CFG, tok.vocab_size, weights)
    assert model.train_step(tokens, 0, 1000) == pytest.approx(base_loss, abs=1e-13)
    assert_close(
        flat_list(baseline.weights(), tok.vocab_size), flat_list(model.weights(), tok.vocab_size)
    )


THREADS_PROBE = """
import os, sys
import microgpt.stages._arrays as arrays  # tensor's numpy first: MKL_NUM_THREADS=1 for its BLAS
import torch
from microgpt.config import GPTConfig
from microgpt.model import init_weights
from microgpt.stages import pytorch
import random
cfg = GPTConfig(n_layer=1, n_embd=128, n_head=4)
model = pytorch.Model(cfg, 27, init_weights(cfg, 27, random.Random(0)), device="cpu")
before = torch.get_num_threads()
model.use_threads()
info = torch.__config__.parallel_info()
mkl = info.split("mkl_get_max_threads() :")[1].split()[0] if "mkl_get" in info else "none"
print(os.environ.get("MKL_NUM_THREADS"), before, pytorch.THREADS, arrays.cores(),
      torch.get_num_threads(), mkl)
"""


@pytest.mark.parametrize("omp", [None, "1"])
def test_a_wide_model_uses_pytorch_s_own_threads_after_tensor_s_numpy(omp):
    """`_arrays` sets MKL_NUM_THREADS=1 for numpy; PyTorch loaded after must not read it
    as the user's choice (it did, and ran the scale benchmark's wide cells on one thread).
    OMP_NUM_THREADS set by the user still decides."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    out = subprocess.run(
        [sys.executable, "-c", THREADS_PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    mkl_var, before, chosen, cores, after, mkl = out
    if omp:
        assert (mkl_var, chosen, after) == ("None", "1", "1")  # the user's setting stands
    else:
        assert mkl_var == "1" and before == "1"  # what PyTorch read from the variable
        assert chosen == cores == after  # a thread per core, set where it counts
        assert mkl in (cores, "none")  # MKL's count too, where PyTorch has MKL
