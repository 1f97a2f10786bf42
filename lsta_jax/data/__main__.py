"""`python -m lsta_jax.data`: build a dataset, export synthetic clips or compute optical flow images
(see `lsta_jax.data.build`)."""

import sys

from lsta_jax.data.build import main

if __name__ == "__main__":
    sys.exit(main())
