"""How bad a finding is: the one scale the data findings, the lint and both doctors share.

Findings are listed worst first everywhere (the CLI, the panels, doctor's JSON), and doctor yields
its findings in steps as it learns them (:class:`FindingsSoFar`), so the scale lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol, TypeVar

Level = Literal["error", "warning", "note"]
LEVEL_ORDER: dict[str, int] = {"error": 0, "warning": 1, "note": 2}


class _HasLevel(Protocol):
    level: str


F = TypeVar("F", bound=_HasLevel)


def worst_first(findings: Iterable[F]) -> list[F]:
    """Errors, then warnings, then notes; in their own order within a level."""
    return sorted(findings, key=lambda f: LEVEL_ORDER[f.level])


class FindingsSoFar(list):
    """Findings gathered in steps and handed on step by step (doctor prints as it goes): ``fresh()``
    is what came since its last call, worst first."""

    _shown = 0

    def fresh(self) -> list:
        new, self._shown = self[self._shown:], len(self)
        return worst_first(new)
