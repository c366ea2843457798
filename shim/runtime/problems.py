"""Problems are data: what is wrong, where, and how to fix it.

Every check in the project returns a list of Problem. The error page, `wsgi-shim check`
(text and --json) and the tasks render the same list.
"""

from __future__ import annotations

FIELDS = ("code", "what", "where", "fix", "detail", "severity")


class Problem:
    """One problem (immutable, compared and hashed by value).

    A plain class, not a dataclass: importing dataclasses (and inspect, ast, dis with it) and
    building the class cost a few milliseconds at every process start (bench/startup).
    """

    __slots__ = FIELDS
    code: str        # stable identifier, e.g. "config-syntax"; docs/troubleshooting.md's table keys
    what: str        # one sentence: what is wrong
    where: str       # file, config key or path it concerns
    fix: str         # what to do about it
    detail: str      # optional extra text (a traceback); never a secret's contents
    severity: str    # "error", or "warning": reported, but the site still serves (e.g. no app log)

    def __init__(self, code: str, what: str, where: str, fix: str, detail: str = "",
                 severity: str = "error") -> None:
        for name, value in zip(FIELDS, (code, what, where, fix, detail, severity)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Problem is immutable: cannot set {name!r}")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def _key(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in FIELDS)

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def replace(self, **changes: str) -> "Problem":
        """A copy with some fields changed (what dataclasses.replace did)."""
        return Problem(**{**self.as_dict(), **changes})

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:  # copy and pickle, as a dataclass had
        return Problem, self._key()

    def __repr__(self) -> str:
        return "Problem(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS) + ")"

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        """From JSON written by any wsgi-shim version (start records, the probe): unknown keys ignored."""
        return cls(**{k: str(data[k]) for k in FIELDS if k in data})

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}

    def as_text(self) -> str:
        label = "" if self.severity == "error" else f"{self.severity}: "
        lines = [f"{label}[{self.code}] {self.what}", f"    where: {self.where}", f"    fix:   {self.fix}"]
        if self.detail:
            lines += ["    " + line for line in self.detail.rstrip().split("\n")]
        from shim.runtime.redact import escape_controls  # text for a terminal: no raw ESC or CR

        return escape_controls("\n".join(lines))
