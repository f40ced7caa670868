"""Kubeflow Pipelines v2: typed components over the core stages, compiled IR, local runs.

Nothing here imports kfp at package import time; ``runner``, ``components`` and ``pipelines``
do, and only the KFP runner and the ``mlopsbench kfp`` commands import those.
"""
