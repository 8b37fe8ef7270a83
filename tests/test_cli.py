"""The command line: bad input gives one line and the right exit code; checkpoints round-trip."""

import json
import random

import pytest
from helpers import run_cli

from microgpt import checkpoint, stages
from microgpt.data import Tokenizer
from microgpt.tools.cli import main
from microgpt.train import Run, sample_names


@pytest.fixture
def small_names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("emma\nolivia\nava\nisabella\nsophia\nmia\nzoe\n")
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "ten"], "not a whole number"),
        (["--temperature", "0"], "positive number"),
        (["--temperature", "-1"], "positive number"),
        (["--temperature", "nan"], "positive number"),
        (["--samples", "-2"], "must be at least 0"),
        (["--stage", "warp"], "unknown stage 'warp'"),
        (["--bogus"], "unrecognized arguments"),
        (["sample"], "--load"),
        (["sample", "--load", "x.json", "--temperature", "hot"], "not a number"),
        (["stages", "extra"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys, args, fragment):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err


@pytest.mark.parametrize(
    "content, fragment",
    [(b"", "is empty"), (b"\xff\xfe\x00b\x00", "UTF-16"), (b"\n\n", "no names")],
)
def test_bad_data_exits_1_with_one_line(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    assert main(["--data", str(path), "--steps", "1", "--stage", "baseline"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and str(path) in err


def test_missing_data_file_is_a_runtime_error(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none.txt"), "--steps", "1", "--stage", "baseline"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_help_everywhere():
    for args in (["--help"], ["sample", "--help"], ["stages", "--help"], ["bench", "--help"]):
        result = run_cli(args)
        assert result.returncode == 0, (args, result.stderr)
        assert "usage:" in result.stdout


def test_subprocess_error_has_no_traceback(tmp_path):
    result = run_cli(["--data", str(tmp_path / "missing.txt"), "--stage", "baseline"])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.usefixtures("frozen_gc")  # the baseline trains and samples: Value graphs
def test_checkpoint_round_trip(small_names, tmp_path, capsys):
    ckpt = tmp_path / "model.json"
    args = ["--data", str(small_names), "--steps", "5", "--stage", "baseline"]
    assert main([*args, "--save", str(ckpt), "--samples", "0"]) == 0
    capsys.readouterr()
    assert main(["sample", "--load", str(ckpt), "--seed", "7", "--samples", "5"]) == 0
    loaded_names = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()]

    # the same training in-process, then sampling right away with the same seed
    from microgpt.data import read_names

    run = Run(read_names(small_names), stages.load("baseline"), seed=42)
    for _ in run.train(5):
        pass
    expected = sample_names(run.model, run.tokenizer, random.Random(7), 5, 0.5)
    assert loaded_names == expected
    saved = json.loads(ckpt.read_text())
    assert saved["chars"] == run.tokenizer.chars
    assert saved["weights"] == run.model.weights()


def test_save_to_missing_folder_fails_before_training(small_names, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "dir" / "m.json"
    with pytest.raises(SystemExit) as exc:  # an unusable --save is a flag error
        main(["--data", str(small_names), "--steps", "1", "--save", str(target)])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err
    assert "num docs" not in captured.out


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not a JSON checkpoint"),
        ('{"format": "other"}', "not a microgpt checkpoint"),
        ('{"format": "microgpt-checkpoint", "version": 99}', "version 99"),
    ],
)
def test_corrupt_checkpoints(tmp_path, capsys, content, fragment):
    path = tmp_path / "c.json"
    path.write_text(content)
    assert main(["sample", "--load", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_mismatched_checkpoint(small_names, tmp_path, capsys):
    ckpt = tmp_path / "model.json"
    assert main(["--data", str(small_names), "--steps", "1", "--save", str(ckpt)]) == 0
    doc = json.loads(ckpt.read_text())
    doc["chars"] = doc["chars"][:-1]  # vocabulary no longer matches the weights
    ckpt.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["sample", "--load", str(ckpt)]) == 1
    assert "mismatched" in capsys.readouterr().err
    doc = json.loads(ckpt.read_text())
    doc["weights"]["wte"][0][0] = "NaN"
    ckpt.write_text(json.dumps(doc))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(ckpt)


def test_diverging_loss_stops_with_a_message(monkeypatch, small_names, capsys):
    baseline = stages.load("baseline")
    monkeypatch.setattr(baseline.Model, "train_step", lambda self, t, s, n: float("nan"))
    assert main(["--data", str(small_names), "--stage", "baseline", "--steps", "3"]) == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 1" in err


def test_fallback_is_announced_when_offline(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MICROGPT_DATA_URL": "http://127.0.0.1:9/names.txt",  # nothing listens on port 9
    }
    result = run_cli(["--steps", "2", "--samples", "1", "--stage", "baseline"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "warning: could not download names.txt" in result.stderr
    assert "built-in fallback list" in result.stderr
    assert not (tmp_path / "cache" / "microgpt" / "names.txt").exists()


def test_profiles_are_written(small_names, tmp_path, monkeypatch, capsys):
    import pstats

    monkeypatch.setenv("MICROGPT_CPU_PROFILE", str(tmp_path / "cpu.prof"))
    monkeypatch.setenv("MICROGPT_MEM_PROFILE", str(tmp_path / "mem.txt"))
    argv = ["--data", str(small_names), "--steps", "2", "--samples", "1", "--stage", "gc"]
    assert main(argv) == 0
    stats = pstats.Stats(str(tmp_path / "cpu.prof"))
    assert any("backward" in func[2] for func in stats.stats)
    report = (tmp_path / "mem.txt").read_text()
    assert report.startswith("peak traced memory:") and "top 25 allocation sites" in report


def test_tokenizer_from_checkpoint_chars():
    tok = Tokenizer(["a", "b"])
    assert tok.bos == 2 and tok.vocab_size == 3
