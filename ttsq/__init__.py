"""ttsq's service core: configuration, job records, storage and the command line, shared by api/ and worker/.

ttsq installs four top-level packages (``engine``, ``worker``, ``api``, ``ttsq``: the repository's layout), and
another distribution may install a package of the same name. Importing ttsq checks, without importing them, that
the three others found are its own siblings, so a clash is one clear error instead of a strange one later.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SIBLINGS = ("engine", "worker", "api")


def _check_siblings() -> None:
    home = Path(__file__).resolve().parent.parent
    for name in SIBLINGS:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or origin.parent.parent != home:
            found = origin.parent if origin is not None else "nothing"
            raise ImportError(
                f"ttsq needs its own '{name}' package beside it in {home}, but Python finds {found}: another "
                f"distribution installs a top-level '{name}'; install ttsq in a virtual environment of its own"
            )


_check_siblings()
