"""Which pages each role sees: the role's navigation is built from this table alone."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

PAGES_DIR = Path(__file__).with_name("pages")


class PageSpec(NamedTuple):
    script: str  # file name in PAGES_DIR
    title: str
    icon: str

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.script


ROLE_PAGES: dict[str, tuple[PageSpec, ...]] = {
    "therapist": (PageSpec("day.py", "My day", "📅"),
                  PageSpec("plan.py", "Plan treatment", "🩺"),
                  PageSpec("course.py", "Course of care", "📈"),
                  PageSpec("followup.py", "Record follow-up", "📋")),
    "data_staff": (PageSpec("data_import.py", "Import data", "📥"),
                   PageSpec("data_models.py", "Train and evaluate", "🧪")),
    "supervisor": (PageSpec("audit_log.py", "Audit log", "🔏"),
                   PageSpec("oversight.py", "Oversight", "📊"),
                   PageSpec("model_registry.py", "Models", "🗂️")),
    "admin": (PageSpec("users.py", "Users and roles", "👥"),),
}
