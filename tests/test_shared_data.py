"""Building the corpus without the shared data: one line that says what is missing, where it
comes from and how to point hdys-rt at it."""

from hdys_rt.cli import main
from hdys_rt.data.shared import ENV_VAR


def test_data_build_without_shared_data_says_where_it_comes_from(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    rc = main(["data", "build", "--quick", "--out", str(tmp_path / "corpus"),
               "--domains", "lab_real", "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    line = err[0]
    assert line.startswith("hdys-rt data: error: shared data with opensim-models")
    assert "https://github.com/opensim-org/opensim-models" in line
    assert f"set {ENV_VAR}" in line and "Training data" in line
