"""`python -m lsta_jax.predict`: see `lsta_jax.predict`.

A package, so that `lsta_jax.predict` (the function exported by `lsta_jax/__init__.py`) and this command can
share a name without runpy's double-import warning.
"""

import sys

from lsta_jax.predict.cli import main

sys.exit(main())
