import subprocess

from specflow_nb.demo import SAMPLE_FEATURE


def test_sample_project_is_a_repo_on_its_feature_branch(sample_project):
    branch = subprocess.run(
        ["git", "branch", "--show-current"], cwd=sample_project, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert branch == SAMPLE_FEATURE
    assert (sample_project / "specs" / SAMPLE_FEATURE / "tasks.md").read_text().count("- [ ] T0") == 20
