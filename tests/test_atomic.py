import pytest

from engine.atomic import atomic_path, write_text


def test_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    write_text(p, "one")
    write_text(p, "two")
    assert p.read_text() == "two"
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "a.json"
    write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]
