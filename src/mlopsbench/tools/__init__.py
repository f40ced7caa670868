"""One folder per MLOps tool, each declaring itself (``TOOL = Tool(...)`` in its ``__init__``).

Tools never import each other (an import-linter contract); ``mlopsbench.toolkit.registry``
lists them and loads their adapters on demand.
"""
