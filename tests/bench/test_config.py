from __future__ import annotations

import pytest

from alexnet_deploy.bench.config import Matrix, MeasureRules, config_from_toml
from alexnet_deploy.errors import AlexnetDeployError, UsageError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backends": ("onnx-magic",)}, "unknown backend 'onnx-magic'"),
        ({"precisions": ("int4",)}, "unknown precision 'int4'"),
        ({"batches": (1, 0)}, r"batch values must be >= 1, got \[0\]"),
        ({"batches": (-2,)}, r"batch values must be >= 1, got \[-2\]"),
        ({"batches": (8, 8)}, r"batch list has duplicates: \[8\]"),
        ({"batches": ()}, "the batch list is empty"),
        ({"modes": ("offline",)}, "unknown mode 'offline'"),
        ({"quantizers": ("awq",)}, "unknown quantizer 'awq'"),
        ({"quantizers": ("qdq", "qdq")}, "quantizers must be a non-empty list without duplicates"),
        ({"quantizers": ()}, "quantizers must be a non-empty list without duplicates"),
    ],
)
def test_bad_matrix(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Matrix(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_seconds": 0}, "min-seconds must be > 0"),
        ({"max_seconds": -1}, "max-seconds must be > 0"),
        ({"stability": 0}, "stability must be > 0"),
        ({"min_seconds": 5, "max_seconds": 1}, "below min-seconds"),
        ({"repeat": 0}, "repeat must be >= 1"),
        ({"percentiles": (50, 100)}, "percentiles must be in"),
        ({"max_seconds": float("nan")}, "max-seconds must be a finite number, got nan"),
        ({"max_seconds": float("inf")}, "max-seconds must be a finite number, got inf"),
        ({"min_seconds": float("nan")}, "min-seconds must be a finite number"),
    ],
)
def test_bad_rules(kwargs, message):
    with pytest.raises(UsageError, match=message):
        MeasureRules(**kwargs)


def test_toml_config(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(
        '[matrix]\nbackends = ["ort"]\nbatches = [1, 8]\n[rules]\nmax_seconds = 2.0\nrepeat = 3\n'
    )
    config = config_from_toml(path)
    assert config.matrix.backends == ("ort",) and config.matrix.batches == (1, 8)
    assert config.rules.max_seconds == 2.0 and config.rules.repeat == 3


def test_toml_unknown_keys_are_named(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text('[matrix]\nbackend = ["ort"]\nbatchs = [1]\n')
    with pytest.raises(
        AlexnetDeployError, match=r"unknown key\(s\) in \[matrix\]: backend, batchs"
    ):
        config_from_toml(path)
    path.write_text("[measure]\nx = 1\n")
    with pytest.raises(AlexnetDeployError, match="unknown key.*the top level: measure"):
        config_from_toml(path)


def test_the_int8_route_only_multiplies_int8_cases():
    from alexnet_deploy.bench.config import BenchConfig
    from alexnet_deploy.bench.run import expand

    matrix = Matrix(precisions=("fp32", "int8"), batches=(1,), quantizers=("qdq", "nncf"))
    cases = expand(BenchConfig(matrix=matrix), ["ort"])
    assert [(c.precision, c.quantizer) for c in cases] == [
        ("fp32", "qdq"),
        ("int8", "qdq"),
        ("int8", "nncf"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[matrix]\nbackends = "ort"\n',
            r"\[matrix\] backends = 'ort': expected a list of strings",
        ),
        ("[matrix]\nbatches = [1.5]\n", r"\[matrix\] batches = \[1.5\]: expected a list of whole"),
        ("matrix = 5\n", r"matrix = 5: expected a table \[matrix\]"),
        ('[rules]\nrepeat = "3"\n', r"\[rules\] repeat = '3': expected a whole number"),
        ("[rules]\nmax_seconds = true\n", r"\[rules\] max_seconds = True: expected a number"),
        ("[rules]\nmax_seconds = nan\n", "max-seconds must be a finite number, got nan"),
    ],
)
def test_toml_values_of_the_wrong_type_name_their_key(tmp_path, text, message):
    """These passed validation and failed later (every row failed, or 'unknown backend o')."""
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(AlexnetDeployError, match=message):
        config_from_toml(path)


def test_toml_that_is_not_a_text_file(tmp_path):
    binary = tmp_path / "bench.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(AlexnetDeployError, match="is not a text file"):
        config_from_toml(binary)
    with pytest.raises(AlexnetDeployError, match="is a directory"):
        config_from_toml(tmp_path)


def test_cli_reports_a_bad_config_in_one_line(cli, tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text('[matrix]\nbackends = "ort"\n')
    result = cli("bench", "--config", path, "--work-dir", tmp_path / "w")
    assert result.exit_code in (1, 2) and "Traceback" not in result.stderr
    assert "expected a list of strings" in result.stderr
    result = cli("bench", "--max-seconds", "nan", "--work-dir", tmp_path / "w")
    assert result.exit_code == 2 and "finite number" in result.stderr
