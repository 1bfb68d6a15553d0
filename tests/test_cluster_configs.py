"""The cluster configurations parse, and run the command the README documents."""

import re
import shlex
from pathlib import Path

import yaml

from blockcopy_core.pipeline.cli import parse_args

REPO = Path(__file__).resolve().parents[1]


def documented_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Scaling out", 1)[1]
    match = re.search(r"ray job submit .*? -- (python -m jobs\.evaluate [^\n]+)", section)
    assert match, "README's Scaling out section documents no ray job submit command"
    return match.group(1)


def test_yaml_files_parse():
    for name in ("cluster.yaml", "rayjob.yaml", "runtime_env.yaml"):
        assert isinstance(yaml.safe_load((REPO / "cluster" / name).read_text()), dict), name


def test_rayjob_runs_the_documented_command():
    manifest = yaml.safe_load((REPO / "cluster" / "rayjob.yaml").read_text())
    assert manifest["kind"] == "RayJob"
    assert manifest["spec"]["entrypoint"] == documented_command()
    workers = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_cluster_launcher_documents_the_same_command():
    text = (REPO / "cluster" / "cluster.yaml").read_text()
    assert documented_command() in text
    config = yaml.safe_load(text)
    assert config["head_node_type"] in config["available_node_types"]


def test_documented_command_is_valid_for_the_job():
    args = parse_args(shlex.split(documented_command())[3:])
    assert args.executor == "ray" and args.data == "cityscapes" and args.model_backbone == "resnet50"


def test_runtime_env_keeps_runs_and_checkpoints_out_of_the_upload():
    env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    assert "runs/" in env["excludes"] and "*.pth" in env["excludes"]
