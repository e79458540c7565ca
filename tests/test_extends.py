"""`extends: <file>`: a spec that tells a base spec's story with a few fields changed."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import DEMO, REPO, demo_data, shootout_cli, write_spec

from jobspecs import SpecError, load_spec
from jobspecs.load import MAX_EXTENDS
from tasks.box import resolved_spec


def write(path, data: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def refused(path: str, *expected: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"
    return message


def test_the_model_specs_tell_the_demos_story_with_their_model() -> None:
    demo = load_spec(DEMO).spec
    for name, model in [("wan", "wan22_ti2v_5b"), ("hunyuan", "hunyuan_i2v"), ("cogvideox", "cogvideox15_5b_i2v")]:
        spec = load_spec(REPO / "jobspecs" / f"{name}.yaml").spec
        assert spec.model == model
        assert spec.shots == demo.shots and spec.constants == demo.constants and spec.title == demo.title
        assert spec.stitch == demo.stitch and spec.reference_image == demo.reference_image
        assert spec.color_match.mode == "reinhard" and spec.color_match.strength == 0.5
        assert spec.infrastructure.provider == "vast" and spec.offer_choice  # `gpu: auto`: the planner's box
        assert spec.offer_choice.startswith("infrastructure.gpu = 'auto', num_gpus = 'auto' → ")


def test_mappings_merge_key_by_key_and_the_child_wins(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "base.yaml")
    child = write(tmp_path / "child.yaml", {"extends": "base.yaml", "seed": 7, "stitch": {"crf": 22}})
    job = load_spec(child)
    assert job.spec.seed == 7 and job.spec.stitch.crf == 22
    assert job.spec.stitch.preset == "medium" and job.spec.stitch.threads == 4  # the base's, kept
    assert job.spec.title == "Morning espresso" and job.reference == (tmp_path / "espresso.png").resolve()


def test_a_list_replaces_the_bases_list_whole(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "base.yaml")
    shots = [dict(shot, duration_s=8) for shot in demo_data()["shots"][:4]]  # 4 shots of 8 s, not 6 of 6 s
    job = load_spec(write(tmp_path / "child.yaml", {"extends": "base.yaml", "shots": shots}))
    assert [shot.subject for shot in job.spec.shots] == [shot["subject"] for shot in shots]
    assert [shot.duration_s for shot in job.spec.shots] == [8] * 4


def test_a_chain_of_extends_merges_every_level(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "base.yaml")
    write(tmp_path / "middle.yaml", {"extends": "base.yaml", "seed": 7, "stitch": {"crf": 22}})
    top = write(tmp_path / "top.yaml", {"extends": "middle.yaml", "title": "Evening espresso", "stitch": {"crf": 24}})
    spec = load_spec(top).spec
    assert (spec.title, spec.seed, spec.stitch.crf, spec.model) == ("Evening espresso", 7, 24, "kenburns")


def test_a_chain_longer_than_the_limit_is_refused(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "spec0.yaml")
    for level in range(1, MAX_EXTENDS + 2):
        write(tmp_path / f"spec{level}.yaml", {"extends": f"spec{level - 1}.yaml", "seed": level})
    assert load_spec(tmp_path / f"spec{MAX_EXTENDS}.yaml").spec.seed == MAX_EXTENDS  # MAX_EXTENDS levels: accepted
    refused(str(tmp_path / f"spec{MAX_EXTENDS + 1}.yaml"), "extends = 'spec0.yaml'", f"more than {MAX_EXTENDS} levels")


def test_a_cycle_of_extends_is_refused(tmp_path) -> None:
    write(tmp_path / "a.yaml", {"extends": "b.yaml", "seed": 1})
    write(tmp_path / "b.yaml", {"extends": "a.yaml", "seed": 2})
    refused(str(tmp_path / "a.yaml"), "extends = 'a.yaml'", "a cycle of extends (a.yaml → b.yaml → a.yaml)")
    write(tmp_path / "self.yaml", {"extends": "self.yaml"})
    refused(str(tmp_path / "self.yaml"), "extends = 'self.yaml'", "a cycle of extends")


def test_a_missing_unreadable_or_odd_base_is_refused_in_one_line(tmp_path) -> None:
    spec = write(tmp_path / "spec.yaml", {"extends": "nowhere.yaml"})
    done = shootout_cli("validate", spec, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("REFUSED extends = 'nowhere.yaml'") and "file not found" in done.stderr
    (tmp_path / "folder.yaml").mkdir()
    refused(write(tmp_path / "spec.yaml", {"extends": "folder.yaml"}), "extends = 'folder.yaml'", "not a regular file")
    (tmp_path / "list.yaml").write_text("- title: a list, not a mapping\n")
    refused(write(tmp_path / "spec.yaml", {"extends": "list.yaml"}), "extends = 'list.yaml'", "must be a YAML mapping")
    refused(write(tmp_path / "spec.yaml", {"extends": ["base.yaml"]}), "extends = ['base.yaml']", "the path of a base")
    refused(write(tmp_path / "spec.yaml", {"extends": ""}), "extends = ''", "the path of a base spec file expected")


def test_the_yaml_limits_hold_for_the_base_too(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text(DEMO.read_text() + "seed: 5\n")  # a second `seed:`
    spec = write(tmp_path / "spec.yaml", {"extends": "base.yaml"})
    refused(spec, "extends = 'base.yaml'", "duplicate key 'seed'")
    (tmp_path / "base.yaml").write_text(DEMO.read_text().replace("title:", "title: " + "[" * 40 + "]" * 40 + "\nx:"))
    refused(spec, "extends = 'base.yaml'", "nested too deeply")


def test_a_reference_image_stays_relative_to_the_file_that_names_it(tmp_path) -> None:
    write_spec(tmp_path / "stories", demo_data(), "demo.yaml")  # with stories/espresso.png
    child = write(tmp_path / "models" / "wan.yaml", {"extends": "../stories/demo.yaml", "model": "wan22_ti2v_5b"})
    assert load_spec(child).reference == (tmp_path / "stories" / "espresso.png").resolve()
    shutil.copy(REPO / "jobspecs" / "espresso.png", tmp_path / "models" / "own.png")
    write(tmp_path / "models" / "own.yaml", {"extends": "wan.yaml", "reference_image": "own.png"})
    assert load_spec(tmp_path / "models" / "own.yaml").reference == (tmp_path / "models" / "own.png").resolve()


def test_overrides_apply_after_the_merge(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "base.yaml")
    child = write(tmp_path / "child.yaml", {"extends": "base.yaml", "seed": 7, "stitch": {"crf": 22}})
    job = load_spec(child, ["seed=9", "stitch.crf=20", "shots.0.duration_s=8"])
    assert (job.spec.seed, job.spec.stitch.crf, job.spec.shots[0].duration_s) == (9, 20, 8)
    assert job.spec.stitch.preset == "medium"
    refused(child, "extends", "unknown key", overrides=("extends=other.yaml",))  # not a field of the merged spec


def test_the_resolved_spec_is_the_merged_spec_without_extends(tmp_path) -> None:
    write_spec(tmp_path, demo_data(), "base.yaml")
    child = load_spec(write(tmp_path / "child.yaml", {"extends": "base.yaml", "seed": 7}))
    expected = load_spec(write_spec(tmp_path, demo_data() | {"seed": 7}, "flat.yaml"))
    assert resolved_spec(child) == resolved_spec(expected) and "extends" not in resolved_spec(child)
    assert yaml.safe_dump(resolved_spec(child)) == yaml.safe_dump(resolved_spec(expected))  # job.yaml, byte for byte
