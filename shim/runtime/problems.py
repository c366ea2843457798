"""Problems are data: what is wrong, where, and how to fix it.

Every check in the project returns a list of Problem. The error page, `wsgi-shim check`
(text and --json) and the tasks render the same list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    code: str        # stable identifier, e.g. "config-syntax"; docs/troubleshooting.md's table keys
    what: str        # one sentence: what is wrong
    where: str       # file, config key or path it concerns
    fix: str         # what to do about it
    detail: str = ""  # optional extra text (a traceback); never a secret's contents
    severity: str = "error"  # "warning": reported, but the site still serves (e.g. no app log)

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        """From JSON written by any wsgi-shim version (start records, the probe): unknown keys ignored."""
        known = ("code", "what", "where", "fix", "detail", "severity")
        return cls(**{k: str(data[k]) for k in known if k in data})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def as_text(self) -> str:
        label = "" if self.severity == "error" else f"{self.severity}: "
        lines = [f"{label}[{self.code}] {self.what}", f"    where: {self.where}", f"    fix:   {self.fix}"]
        if self.detail:
            lines += ["    " + line for line in self.detail.rstrip().split("\n")]
        from shim.runtime.redact import escape_controls  # text for a terminal: no raw ESC or CR

        return escape_controls("\n".join(lines))
