from behemoth_hf.cli import main


def test_quickstart_runs_the_whole_pipeline_at_tiny_scale(tmp_path, capsys):
    output = tmp_path / "quickstart"
    assert main(["quickstart", "--world", "tiny", "--preset", "tiny", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    for name in ("oracle", "model", "npo", "edit-lora"):
        assert f"\n{name} " in printed, printed
        assert (output / "evaluation" / name / "BEHEMOTH_EVAL.json").exists()
    assert "report with plots:" in printed and (output / "evaluation" / "report.md").exists()
    assert (output / "evaluation" / "forget_vs_utility.png").exists()
    # Edit success is a number for the edit run only.
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model ") and "forget acc" in line)
    assert lines[start].split()[-2:] == ["edit", "success"]
    last_cells = {line.split()[0]: line.split()[-1] for line in lines[start + 1 : start + 5]}
    assert last_cells["model"] == last_cells["npo"] == "-" and 0 <= float(last_cells["edit-lora"]) <= 1
    # A second run reuses every finished stage and only re-evaluates.
    stamp = (output / "model" / "model.safetensors").stat().st_mtime_ns
    assert main(["quickstart", "--world", "tiny", "--preset", "tiny", "--output", str(output)]) == 0
    assert (output / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    # Another world in the same folder is refused, naming both, and nothing there is touched.
    capsys.readouterr()
    assert main(["quickstart", "--world", "correlated", "--preset", "tiny", "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert "holds world `tiny`" in error and "world `correlated`" in error
    assert (output / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def test_quickstart_rejects_unknown_names(tmp_path):
    assert main(["quickstart", "--world", "huge", "--output", str(tmp_path / "q")]) == 2
    assert main(["quickstart", "--preset", "giant", "--output", str(tmp_path / "q")]) == 2
    assert not (tmp_path / "q").exists()
