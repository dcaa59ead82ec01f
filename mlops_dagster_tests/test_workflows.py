"""The GitHub Actions workflows users get (.github/workflows, and the composite action they share
in .github/actions): they lint clean with actionlint and zizmor (workflow security), each `mlops`
command they call exists, and a broken workflow fails both linters (so this check can fail)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent


def _lint(folder: Path, actions: list[Path] = ()) -> dict[str, subprocess.CompletedProcess]:
    """actionlint on the workflows; zizmor on them and on the composite actions they use."""
    files = sorted(str(p) for p in folder.glob("*.yml"))
    return {
        "actionlint": subprocess.run(
            [str(BIN / "actionlint"), "-no-color", *files], capture_output=True, text=True
        ),
        "zizmor": subprocess.run(
            [str(BIN / "zizmor"), "--offline", "--no-progress", *files, *map(str, actions)],
            capture_output=True,
            text=True,
        ),
    }


def test_the_workflows_lint_clean():
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == [
        "deploy-prod.yml",
        "deploy-staging.yml",
        "pull-request.yml",
    ]
    actions = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
    assert [a.parent.name for a in actions] == ["setup"]
    for tool, done in _lint(WORKFLOWS, actions).items():
        assert done.returncode == 0, f"{tool}:\n{done.stdout}{done.stderr}"


def test_a_broken_workflow_fails_both_linters(tmp_path):
    (tmp_path / "broken.yml").write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v5\n"  # unpinned, credentials persisted
        "      - run: echo ${{ github.event.pull_request.title }}\n"  # template injection
        "      - run: echo ${{ matrix.nothing }}\n"  # no such matrix
    )
    results = _lint(tmp_path)
    assert results["actionlint"].returncode != 0 and "matrix" in results["actionlint"].stdout
    assert results["zizmor"].returncode != 0 and "template-injection" in results["zizmor"].stdout


def test_every_mlops_command_the_workflows_call_exists():
    called = set()
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                for line in step.get("run", "").splitlines():
                    match = re.search(r"\.venv/bin/mlops (\S+)((?: --[a-z-]+(?: \S+)?)*)", line)
                    if match:
                        called.add((match.group(1), tuple(re.findall(r"--[a-z-]+", match.group(2)))))
    assert {command for command, _ in called} == {"bootstrap", "promote", "approve"}
    for command, options in called:
        done = subprocess.run([str(BIN / "mlops"), command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        missing = [o for o in options if o not in done.stdout]
        assert not missing, f"mlops {command} has no {missing}"


@pytest.mark.parametrize(
    "command",
    [
        "mlops bootstrap --target staging",
        "mlops promote --reason x",
        "mlops approve --version challenger --comment x",
    ],
)
def test_the_workflow_commands_parse(command):
    from mlops_dagster.cli import main

    # --help after the arguments: argparse validates the choices and required options first.
    with pytest.raises(SystemExit) as exited:
        main([*shlex.split(command)[1:], "--help"])
    assert exited.value.code == 0
