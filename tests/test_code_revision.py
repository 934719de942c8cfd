"""Trained weights record the commit of the code that made them (storage/code_revision)."""
import subprocess

from ng_core.storage.code_revision import code_revision


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_commit_then_dirty_then_outside(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code_revision(repo) == head
    (repo / "new.txt").write_text("untracked files do not make the code dirty\n")
    assert code_revision(repo) == head
    (repo / "a.txt").write_text("two\n")
    assert code_revision(repo) == head + "-dirty"
    sub = repo / "pkg"
    sub.mkdir()
    assert code_revision(sub) is None  # a folder inside another repository is not that repository's code
    plain = tmp_path / "plain"
    plain.mkdir()
    assert code_revision(plain) is None
