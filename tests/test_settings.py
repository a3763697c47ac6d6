"""Settings are kept between calls only while what they were read from is unchanged."""

import pytest
from pydantic import ValidationError

from recommender.services.clinical import ClinicalService
from recommender.settings import SettingsError, get_settings
from recommender.threads import limit_threads


def test_settings_are_reused_until_a_variable_changes(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECOMMENDER_CLINIC_NAME", "North")
    first = get_settings()
    assert get_settings() is first  # nothing changed: the same object, no rebuild
    monkeypatch.setenv("RECOMMENDER_CLINIC_NAME", "South")
    assert get_settings().clinic_name == "South"
    monkeypatch.delenv("RECOMMENDER_CLINIC_NAME")
    assert get_settings().clinic_name == "Pain therapy clinic"


def test_a_lowercase_variable_counts_too(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    get_settings()
    monkeypatch.setenv("recommender_idle_minutes", "3")
    assert get_settings().idle_minutes == 3


def test_the_working_folder_and_its_env_file_are_part_of_the_key(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.delenv("RECOMMENDER_DATA_DIR", raising=False)
    monkeypatch.chdir(a)
    assert get_settings().data_dir == a / "data"
    monkeypatch.chdir(b)
    assert get_settings().data_dir == b / "data"
    (b / "recommender.env").write_text("RECOMMENDER_CLINIC_NAME=From the file\n")
    assert get_settings().clinic_name == "From the file"
    (b / "recommender.env").write_text("RECOMMENDER_CLINIC_NAME=Edited file, longer\n")
    assert get_settings().clinic_name == "Edited file, longer"


def test_a_bad_variable_is_still_refused_by_name_after_a_good_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    get_settings()
    monkeypatch.setenv("RECOMMENDER_IDLE_MINUTES", "soon")
    with pytest.raises(SettingsError, match="RECOMMENDER_IDLE_MINUTES"):
        get_settings()


def test_the_shared_settings_cannot_be_changed_by_a_caller(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError):
        get_settings().clinic_name = "changed for everyone"


def test_a_remembered_typed_intake_is_a_copy_each_time():
    from recommender.devtools.simulator import simulate
    from recommender.services.base import intake_record

    row = simulate(1, seed=3).intakes().iloc[0].to_dict()
    record = intake_record(ClinicalService(None, None, None).validate_intake(row))
    first = ClinicalService.typed_intake(record)
    score = first["pain_score"]
    first["pain_score"] = -1  # one caller's change ...
    again = ClinicalService.typed_intake(record)
    assert again["pain_score"] == score and again is not first  # ... is not another's
    assert again == ClinicalService.typed_intake(dict(record))


def test_thread_limits_are_set_once_and_again_when_changed(monkeypatch):
    import threadpoolctl

    import recommender.threads as threads

    calls = []
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", calls.append)
    monkeypatch.setattr(threads, "_applied", None)
    for name in threads.THREAD_VARIABLES:
        monkeypatch.setenv(name, "1")
    limit_threads(1)
    limit_threads(1)  # Streamlit's next run: nothing to do
    assert calls == [1]
    limit_threads(2)
    assert calls == [1, 2]
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # changed behind its back: set again
    limit_threads(2)
    assert calls == [1, 2, 2]
    limit_threads(1)


def test_the_worker_gives_up_cpu_priority_and_never_takes_it_back():
    import subprocess
    import sys

    code = ("import os; from recommender.threads import yield_cpu; "
            "print(yield_cpu(10), yield_cpu(5), yield_cpu(0), os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    start = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                               capture_output=True, text=True, check=True).stdout)
    expected = max(start, 10)
    assert out == [str(expected)] * 4


def test_a_worker_nice_outside_0_to_19_is_refused_by_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECOMMENDER_WORKER_NICE", "-5")
    with pytest.raises(SettingsError, match="RECOMMENDER_WORKER_NICE"):
        get_settings()
