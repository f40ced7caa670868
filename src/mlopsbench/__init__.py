"""mlopsbench: one ML core, one idiomatic pipeline per MLOps tool, and a harness that compares them.

Importing this package is cheap on purpose: torch, transformers and every MLOps tool are
imported lazily by the modules that need them (see ``mlopsbench.registry``).
"""

__version__ = "0.1.0"
