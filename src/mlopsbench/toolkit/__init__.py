"""What every tool adapter builds on: the declaration (``spec``), the registry of declared tools
(``registry``) and the one record builder (``record``).

Tool folders live in ``mlopsbench.tools``, one package each, independent of each other; this
package sits below them and names none.
"""
