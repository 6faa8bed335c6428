"""Run directories: owned by one process, never claimed twice, their CSV log continued."""

import csv

import pytest

from mobilevitpose.training.runs import check_unclaimed, owned, read_csv_log


def test_a_second_process_cannot_work_in_a_directory_in_use(tmp_path):
    with owned(tmp_path, "mvp-train"):
        # Another lock on the same file stands for another process: locks are per open file.
        with pytest.raises(FileExistsError, match=r"another process is running in .*mvp-eval"):
            with owned(tmp_path, "mvp-eval"):
                pass
    with owned(tmp_path, "mvp-eval"):  # released when the first one ended
        pass


@pytest.mark.parametrize(
    ("made", "named"),
    [
        ("checkpoints/best.ckpt", r"checkpoints \(best\.ckpt, \.\.\.\)"),
        ("metrics.json", r"another run's metrics\.json"),
        ("config.yaml", r"another run's config\.yaml"),
        (".hydra/config.yaml", r"another run's \.hydra"),
    ],
)
def test_a_directory_with_a_runs_files_is_refused_untouched(tmp_path, made, named):
    (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / made).write_text("the run's own")
    with pytest.raises(FileExistsError, match=rf"already holds {named}; the fix\. Nothing"):
        check_unclaimed(tmp_path, "the fix")
    assert (tmp_path / made).read_text() == "the run's own"
    assert not (tmp_path / ".lock").exists()


def test_a_new_directory_or_one_with_only_a_log_is_free(tmp_path):
    check_unclaimed(tmp_path / "new", "unused")
    (tmp_path / "train.log").write_text("hydra's log of this start")
    check_unclaimed(tmp_path, "unused")


def test_the_csv_log_keeps_the_rows_up_to_the_checkpoints_epoch(tmp_path):
    (tmp_path / "csv").mkdir()
    rows = [
        {"epoch": "0", "step": "1", "train/loss": "0.5", "val/AP": ""},
        {"epoch": "0", "step": "1", "train/loss": "", "val/AP": "0.1"},
        {"epoch": "1", "step": "3", "train/loss": "0.4", "val/AP": ""},
        {"epoch": "2", "step": "5", "train/loss": "0.3", "val/AP": ""},
    ]
    with (tmp_path / "csv" / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header, kept = read_csv_log(tmp_path, last_epoch=1)
    assert header == ["epoch", "step", "train/loss", "val/AP"]
    assert kept == rows[:3]
    assert read_csv_log(tmp_path / "elsewhere", last_epoch=1) == ([], [])
