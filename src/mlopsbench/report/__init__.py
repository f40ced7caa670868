"""The evaluation report: the paper's matrix as data, weights, measured scores, HTML/Markdown.

Everything is rebuilt from a compare folder's ``results.jsonl`` (``mlopsbench report DIR``).
"""
