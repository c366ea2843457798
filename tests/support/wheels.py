"""Tiny wheels made on the spot, so pip installs offline (--no-index --find-links)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def wheel(where: Path, version: str, script: str | None = None) -> Path:
    """A minimal pure-Python wheel of the module `depmod` (pip installs it offline); with SCRIPT,
    also a console script of that name printing the version (pip writes it into the venv's bin/)."""
    name = f"depmod-{version}"
    files = {"depmod.py": f"VERSION = {version!r}\n\n\ndef main():\n    print('depmod', VERSION)\n",
             f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: depmod\nVersion: {version}\n",
             f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                         "Tag: py3-none-any\n"}
    if script:
        files[f"{name}.dist-info/entry_points.txt"] = f"[console_scripts]\n{script} = depmod:main\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}.dist-info/RECORD,,")
    path = where / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
        z.writestr(f"{name}.dist-info/RECORD", "\n".join(record) + "\n")
    path.chmod(0o644)
    return path
