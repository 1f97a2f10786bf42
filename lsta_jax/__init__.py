"""lsta_jax: LSTA (Long Short-Term Attention, CVPR 2019) for egocentric action recognition in JAX/Flax.

The public API is small and stable:
  `load_model(path)`            -> (model, variables) from a converted checkpoint or a training workdir
  `create_model(kind, **config)` -> a Flax module of a registered kind
  `predict(path, inputs, ...)`  -> one `Prediction` per video / frame folder (`lsta_jax.predict`), with the
                                   checkpoint's geometry and class names
"""

from lsta_jax.checkpoint import load_model
from lsta_jax.models import create_model
from lsta_jax.predict import predict  # the function; `python -m lsta_jax.predict` is the command

__version__ = "0.1.0"
__all__ = ["create_model", "load_model", "predict"]
